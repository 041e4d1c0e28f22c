-- Orders domain of customer_features: one row per customer with an order on or before
-- as_of (any status). Lifetimes columns, classic RFM, order mix and churn risk, from each
-- customer's order history (int_customer_order_history, incremental): here only what
-- depends on the as-of date or on all customers. Definitions: int_customer_orders.yml.
with

as_of as (
    select * from {{ ref('int_as_of') }}
),

order_history as (
    select * from {{ ref('int_customer_order_history') }}
),

customer_orders as (
    select
        order_history.customer_id,
        order_history.first_purchase_date,
        order_history.last_purchase_date,
        order_history.purchase_days,
        order_history.repeat_revenue,
        coalesce(order_history.orders_count, 0) as orders_count,
        coalesce(order_history.net_revenue, 0) as net_revenue,
        {{ days_between('order_history.last_purchase_date', 'as_of.as_of_date') }}
            as days_since_last_order,
        {{ days_between('order_history.first_purchase_date', 'as_of.as_of_date') }} as t_days,
        order_history.median_gap_days,
        order_history.completed_orders,
        order_history.refunded_orders,
        order_history.completed_discount,
        order_history.completed_gross
    from order_history
    cross join as_of
),

-- ntile(5) among customers with a purchase; ties broken by customer_id.
rfm_scores as (
    select
        customer_id,
        ntile(5) over (
            order by days_since_last_order desc, customer_id asc
        ) as rfm_recency_score,
        ntile(5) over (
            order by orders_count asc, customer_id asc
        ) as rfm_frequency_score,
        ntile(5) over (
            order by net_revenue asc, customer_id asc
        ) as rfm_monetary_score
    from customer_orders
    where purchase_days is not null
),

rfm as (
    select
        customer_id,
        rfm_recency_score,
        rfm_frequency_score,
        rfm_monetary_score,
        cast(
            floor((rfm_frequency_score + rfm_monetary_score + 1) / 2.0) as integer
        ) as rfm_fm_score
    from rfm_scores
)

select
    customer_orders.customer_id,
    -- lifetimes summary_data_from_transaction_data(freq='D', observation_period_end=as_of)
    customer_orders.purchase_days - 1 as frequency,
    {{ days_between('customer_orders.first_purchase_date', 'customer_orders.last_purchase_date') }}
        as recency,
    customer_orders.t_days as {{ adapter.quote("T") }},
    case
        when customer_orders.purchase_days is null then null
        when customer_orders.purchase_days = 1 then cast(0 as {{ money_type() }})
        else {{ safe_money_ratio(
            'customer_orders.repeat_revenue', 'customer_orders.purchase_days - 1'
        ) }}
    end as monetary_value,
    -- classic RFM
    customer_orders.first_purchase_date,
    customer_orders.last_purchase_date,
    customer_orders.days_since_last_order,
    customer_orders.orders_count,
    {{ to_money('customer_orders.net_revenue') }} as net_revenue,
    {{ safe_money_ratio('customer_orders.net_revenue', 'customer_orders.orders_count') }}
        as avg_order_value,
    rfm.rfm_recency_score,
    rfm.rfm_frequency_score,
    rfm.rfm_monetary_score,
    case
        when rfm.rfm_recency_score is null then null
        when rfm.rfm_recency_score = 5 and rfm.rfm_fm_score >= 4 then 'Champions'
        when rfm.rfm_recency_score in (3, 4) and rfm.rfm_fm_score >= 4 then 'Loyal'
        when rfm.rfm_recency_score in (4, 5) and rfm.rfm_fm_score in (2, 3)
            then 'Potential loyalist'
        when rfm.rfm_recency_score = 5 and rfm.rfm_fm_score = 1 then 'New'
        when rfm.rfm_recency_score = 4 and rfm.rfm_fm_score = 1 then 'Promising'
        when rfm.rfm_recency_score = 3 and rfm.rfm_fm_score = 3 then 'Need attention'
        when rfm.rfm_recency_score = 3 and rfm.rfm_fm_score in (1, 2) then 'About to sleep'
        when rfm.rfm_recency_score in (1, 2) and rfm.rfm_fm_score = 5 then 'Cannot lose'
        when rfm.rfm_recency_score in (1, 2) and rfm.rfm_fm_score in (3, 4) then 'At risk'
        when rfm.rfm_recency_score = 1 and rfm.rfm_fm_score = 1 then 'Lost'
        else 'Hibernating'
    end as rfm_segment,
    -- behavioural loyalty: purchase days per year of observation
    case
        when customer_orders.purchase_days is null then null
        else {{ round_double(
            'cast(customer_orders.purchase_days as ' ~ type_double() ~ ')'
            ~ ' / (case when customer_orders.t_days > 1 then customer_orders.t_days else 1 end)'
            ~ ' * 365',
            6
        ) }}
    end as purchase_days_per_year,
    {{ safe_ratio(
        'customer_orders.refunded_orders',
        'customer_orders.completed_orders + customer_orders.refunded_orders'
    ) }} as refund_rate,
    {{ safe_ratio('customer_orders.completed_discount', 'customer_orders.completed_gross') }}
        as discount_share,
    {{ round_double('customer_orders.median_gap_days', 6) }} as median_gap_days,
    case
        when
            customer_orders.purchase_days >= 2
            and customer_orders.days_since_last_order > 2 * customer_orders.median_gap_days
            and customer_orders.days_since_last_order > 90
            then 'high'
        when customer_orders.days_since_last_order > customer_orders.median_gap_days
            then 'medium'
        else 'low'
    end as churn_risk
from customer_orders
left join rfm on customer_orders.customer_id = rfm.customer_id
order by customer_orders.customer_id
