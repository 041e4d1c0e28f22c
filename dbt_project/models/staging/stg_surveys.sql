-- Latest version of each survey response; responses of erased customers removed.
-- Incremental on DuckDB: a night stages only the exports not staged yet, and rebuilds from
-- all of raw when what was staged changed (macros/incremental_staging.sql says when; on
-- Spark a table rebuilt every night, macro staging_model_config says why).
{{ config(**staging_model_config('surveys', unique_key='response_id')) }}

with latest as (
    {{ latest_version(staging_source('surveys'), ['response_id'], has_updated_at=false) }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
)

select
    latest.response_id,
    latest.customer_id,
    latest.responded_at,
    latest.nps,
    latest.csat,
    latest._export_date as source_export_date
from latest
left join erased on latest.customer_id = erased.customer_id
where erased.customer_id is null
order by latest.response_id
