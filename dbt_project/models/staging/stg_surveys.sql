-- Latest version of each survey response; responses of erased customers removed.
-- Incremental: a night stages only the exports not staged yet, and rebuilds from all of raw
-- when what was staged changed (macros/incremental_staging.sql says when).
{{ config(
    materialized='incremental',
    unique_key='response_id',
    incremental_strategy='replace_keys',
    on_schema_change='sync_all_columns',
    raw_table='surveys',
    post_hook="{{ record_staged_exports('surveys') }}",
) }}

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
