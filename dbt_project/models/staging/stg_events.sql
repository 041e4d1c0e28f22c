-- Latest version of each event; events of erased customers removed.
-- Left unsorted, unlike the smaller models: one row per event (~6M at 1M customers), and
-- sorting them cost ~0.9 s a night while nothing reads them in order (see docs/decisions.md).
-- Incremental on DuckDB: a night stages only the exports not staged yet, and rebuilds from
-- all of raw when what was staged changed (macros/incremental_staging.sql says when; on
-- Spark a table rebuilt every night, macro staging_model_config says why).
{{ config(**staging_model_config('events', unique_key='event_id')) }}

with latest as (
    {{ latest_version(staging_source('events'), ['event_id'], has_updated_at=false) }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
)

select
    latest.event_id,
    latest.customer_id,
    latest.occurred_at,
    latest.event_type,
    latest._export_date as source_export_date
from latest
left join erased on latest.customer_id = erased.customer_id
where erased.customer_id is null
