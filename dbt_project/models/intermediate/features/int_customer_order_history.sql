-- What a customer's orders with order_date::date <= as_of give beyond the as-of date
-- itself: one row per customer with such an order (any status). Purchase days (lifetimes'
-- freq='D' grain) = completed orders summed per customer per UTC calendar day; their dates,
-- counts, revenue and gaps, the order mix, and the 12-month cohort values.
-- int_customer_orders and int_customer_cohort_12m add what depends on as_of or on all
-- customers. Definitions: int_customer_order_history.yml.
-- Incremental on DuckDB: a night recomputes only the customers whose orders changed, and
-- rebuilds from all of stg_orders when what it read changed (macros/incremental_history.sql
-- says which customers and when; on Spark a table rebuilt every night).
{{ config(**order_history_model_config()) }}

with

as_of as (
    select * from {{ ref('int_as_of') }}
),

stg_orders as (
    select * from {{ ref('stg_orders') }}
),

orders as (
    select stg_orders.*
    from stg_orders
    cross join as_of
    where
        stg_orders.order_day <= as_of.as_of_date
        and {{ order_history_scope('stg_orders.customer_id') }}
),

purchase_days as (
    select
        customer_id,
        order_day as purchase_date,
        count(*) as orders_count,
        {{ to_money('sum(amount_base)') }} as amount_base
    from orders
    where status = 'completed'
    group by customer_id, order_day
),

numbered_days as (
    select
        purchase_days.*,
        row_number() over (
            partition by purchase_days.customer_id
            order by purchase_days.purchase_date
        ) as purchase_day_number,
        first_value(purchase_days.purchase_date) over (
            partition by purchase_days.customer_id
            order by purchase_days.purchase_date
        ) as first_purchase_date,
        {{ days_between(
            'lag(purchase_days.purchase_date) over ('
            ~ 'partition by purchase_days.customer_id order by purchase_days.purchase_date)',
            'purchase_days.purchase_date'
        ) }} as gap_days
    from purchase_days
),

purchases as (
    select
        customer_id,
        first_purchase_date,
        max(purchase_date) as last_purchase_date,
        count(*) as purchase_days,
        cast(sum(orders_count) as {{ dbt.type_bigint() }}) as orders_count,
        sum(amount_base) as net_revenue,
        sum(case when purchase_day_number > 1 then amount_base else 0 end) as repeat_revenue,
        {{ to_money(
            'sum(case when purchase_date < '
            ~ add_days('first_purchase_date', 365)
            ~ ' then amount_base else 0 end)'
        ) }} as revenue_12m,
        max(
            case
                when purchase_date >= {{ add_days('first_purchase_date', 365) }} then 1
                else 0
            end
        ) = 1 as is_retained_12m
    from numbered_days
    group by customer_id, first_purchase_date
),

-- The median gap as percentile_cont(0.5) computes it (lo + (hi - lo) * 0.5 over the
-- sorted gaps, as a double), from one sorted list per customer: DuckDB's per-group
-- quantile state was the slowest part of the nightly run (~20 s at 1M customers).
gap_lists as (
    select
        customer_id,
        {{ sorted_list_agg('gap_days') }} as sorted_gaps
    from numbered_days
    where gap_days is not null
    group by customer_id
),

median_gaps as (
    select
        customer_id,
        {%- set lower_middle = list_element(
            'sorted_gaps', integer_divide('(' ~ list_size('sorted_gaps') ~ ' + 1)', 2)
        ) -%}
        {%- set upper_middle = list_element(
            'sorted_gaps', integer_divide(list_size('sorted_gaps'), 2) ~ ' + 1'
        ) %}
        cast({{ lower_middle }} as {{ type_double() }})
        + (
            cast({{ upper_middle }} as {{ type_double() }})
            - cast({{ lower_middle }} as {{ type_double() }})
        ) * 0.5 as median_gap_days
    from gap_lists
),

-- Every order on or before as_of, any status: every customer of this model has a row.
order_mix as (
    select
        customer_id,
        cast(
            sum(case when status = 'completed' then 1 else 0 end)
            as {{ dbt.type_bigint() }}
        ) as completed_orders,
        cast(
            sum(case when status = 'refunded' then 1 else 0 end)
            as {{ dbt.type_bigint() }}
        ) as refunded_orders,
        sum(
            case when status = 'completed' then discount_amount_base else 0 end
        ) as completed_discount,
        sum(
            case
                when status = 'completed' then amount_base + discount_amount_base
                else 0
            end
        ) as completed_gross
    from orders
    group by customer_id
)

select
    order_mix.customer_id,
    purchases.first_purchase_date,
    purchases.last_purchase_date,
    purchases.purchase_days,
    purchases.orders_count,
    purchases.net_revenue,
    purchases.repeat_revenue,
    median_gaps.median_gap_days,
    order_mix.completed_orders,
    order_mix.refunded_orders,
    order_mix.completed_discount,
    order_mix.completed_gross,
    purchases.revenue_12m,
    purchases.is_retained_12m
from order_mix
left join purchases on order_mix.customer_id = purchases.customer_id
left join median_gaps on order_mix.customer_id = median_gaps.customer_id
