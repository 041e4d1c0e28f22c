-- Latest version of each customer; PII dropped (first_name, last_name, phone) or hashed
-- (email -> email_hash); marketing_opt_in defaults to false; erased customers removed.
-- Incremental on DuckDB: a night stages only the exports not staged yet, and rebuilds from
-- all of raw when what was staged changed (macros/incremental_staging.sql says when; on
-- Spark a table rebuilt every night, macro staging_model_config says why).
{{ config(**staging_model_config('customers', unique_key='customer_id')) }}

with latest as (
    {{ latest_version(staging_source('customers'), ['customer_id']) }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
)

select
    latest.customer_id,
    {{ hash_email('latest.email') }} as email_hash,
    latest.signup_date,
    latest.country,
    latest.city,
    latest.birth_year,
    latest.gender,
    latest.industry,
    latest.company_size,
    latest.acquisition_channel,
    coalesce(latest.marketing_opt_in, false) as marketing_opt_in,
    latest.updated_at,
    latest._export_date as source_export_date
from latest
left join erased on latest.customer_id = erased.customer_id
where erased.customer_id is null
order by latest.customer_id
