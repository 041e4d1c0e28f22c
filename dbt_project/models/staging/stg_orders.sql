-- Latest version of each order, contract defaults applied (status NULL -> completed,
-- currency NULL -> base currency, discount_amount NULL -> 0), amounts converted to the
-- base currency with stg_fx_rates; orders of erased customers removed.
-- Left unsorted, unlike the smaller models: one row per order (~9M at 1M customers), and
-- sorting them cost ~1.2 s a night while nothing reads them in order (see docs/decisions.md).
-- Incremental on DuckDB: a night stages only the exports not staged yet, and rebuilds from
-- all of raw when what was staged changed (macros/incremental_staging.sql says when; on
-- Spark a table rebuilt every night, macro staging_model_config says why).
{{ config(**staging_model_config('orders', unique_key='order_id')) }}

with latest as (
    {{ latest_version(staging_source('orders'), ['order_id']) }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
),

orders as (
    select
        latest.order_id,
        latest.customer_id,
        latest.order_date,
        cast(latest.order_date as date) as order_day,
        coalesce(latest.status, 'completed') as status,
        coalesce(latest.currency, '{{ var("base_currency") }}') as currency,
        latest.amount,
        coalesce(latest.discount_amount, 0) as discount_amount,
        latest.product_category,
        latest.updated_at,
        latest._export_date as source_export_date
    from latest
    left join erased on latest.customer_id = erased.customer_id
    where erased.customer_id is null
),

converted as (
    select
        orders.*,
        {{ fail_when_null(
            'fx.rate_to_base',
            "'missing fx rate for currency ' || orders.currency"
            ~ " || ' (order ' || orders.order_id || '): add it to fx_rates'"
        ) }} as fx_rate
    from orders
    left join {{ ref('stg_fx_rates') }} as fx on orders.currency = fx.currency
)

select
    order_id,
    customer_id,
    order_date,
    order_day,
    status,
    currency,
    cast(amount as {{ money_type() }}) as amount,
    cast(discount_amount as {{ money_type() }}) as discount_amount,
    fx_rate,
    -- rate exactly 1 (base currency, most orders): the amount itself, the same value as
    -- to_base_currency gives, without its 38-digit product (~1.5 s per 10M orders)
    case
        when fx_rate = 1 then cast(amount as {{ money_type() }})
        else {{ to_base_currency('amount', 'fx_rate') }}
    end as amount_base,
    case
        when fx_rate = 1 then cast(discount_amount as {{ money_type() }})
        else {{ to_base_currency('discount_amount', 'fx_rate') }}
    end as discount_amount_base,
    product_category,
    updated_at,
    source_export_date
from converted
