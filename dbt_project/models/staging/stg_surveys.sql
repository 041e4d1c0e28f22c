-- Latest version of each survey response; responses of erased customers removed.
with latest as (
    {{ latest_version(source('raw', 'surveys'), ['response_id'], has_updated_at=false) }}
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
