-- Latest version of each customer; PII dropped (first_name, last_name, phone) or hashed
-- (email -> email_hash); marketing_opt_in defaults to false; erased customers removed.
with latest as (
    {{ latest_version(source('raw', 'customers'), ['customer_id']) }}
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
