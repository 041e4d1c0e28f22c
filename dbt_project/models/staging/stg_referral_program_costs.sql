-- Latest version of each month's fixed referral program cost (base currency).
with latest as (
    {{ latest_version(source('raw', 'referral_program_costs'), ['month'], has_updated_at=false) }}
)

select
    month,
    cast(cost as {{ money_type() }}) as cost,
    _export_date as source_export_date
from latest
order by month
