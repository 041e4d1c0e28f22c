-- Purchase days: completed orders with order_date::date <= as_of, summed per customer per
-- calendar day (UTC), the transaction grain of lifetimes' freq='D'.
-- Left unsorted, unlike the smaller models: one row per purchase day (~8M at 1M customers), and
-- sorting them cost ~0.7 s a night while nothing reads them in order (see docs/decisions.md).
select
    orders.customer_id,
    orders.order_day as purchase_date,
    count(*) as orders_count,
    {{ to_money('sum(orders.amount_base)') }} as amount_base,
    row_number() over (
        partition by orders.customer_id
        order by orders.order_day
    ) as purchase_day_number
from {{ ref('stg_orders') }} as orders
cross join {{ ref('int_as_of') }} as as_of
where
    orders.status = 'completed'
    and orders.order_day <= as_of.as_of_date
group by orders.customer_id, orders.order_day
