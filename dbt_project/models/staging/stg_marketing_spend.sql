-- Latest version of each (month, channel) of paid acquisition spend (base currency).
with latest as (
    {{ latest_version(
        source('raw', 'marketing_spend'), ['month', 'channel'], has_updated_at=false
    ) }}
)

select
    month,
    channel,
    cast(spend as {{ money_type() }}) as spend,
    new_customers,
    _export_date as source_export_date
from latest
order by month, channel
