-- Latest version of each event; events of erased customers removed.
with latest as (
    {{ latest_version(source('raw', 'events'), ['event_id'], has_updated_at=false) }}
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
order by latest.event_id
