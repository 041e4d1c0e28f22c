-- Latest rate per currency; the base currency always has rate 1 (a row for it in the
-- file is ignored).
with latest as (
    {{ latest_version(source('raw', 'fx_rates'), ['currency'], has_updated_at=false) }}
),

rates as (
    select
        upper(currency) as currency,
        cast(rate_to_base as {{ rate_type() }}) as rate_to_base,
        _export_date as source_export_date
    from latest
    where upper(currency) <> '{{ var("base_currency") }}'

    union all

    select
        '{{ var("base_currency") }}' as currency,
        cast(1 as {{ rate_type() }}) as rate_to_base,
        cast(null as date) as source_export_date
)

select
    currency,
    rate_to_base,
    source_export_date
from rates
order by currency
