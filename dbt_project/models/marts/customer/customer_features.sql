-- One row per (non-erased) customer: the customer's attributes joined to the per-domain
-- intermediate models (orders, surveys, events, referrals), plus what needs more than one
-- domain (advocate_type). Definitions: metrics.md and customer_features.yml.
with

as_of as (
    select * from {{ ref('int_as_of') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

customer_orders as (
    select * from {{ ref('int_customer_orders') }}
),

customer_surveys as (
    select * from {{ ref('int_customer_surveys') }}
),

customer_events as (
    select * from {{ ref('int_customer_events') }}
),

customer_referrals as (
    select * from {{ ref('int_customer_referrals') }}
)

select
    customers.customer_id,
    customers.signup_date,
    customers.country,
    customers.acquisition_channel,
    customers.marketing_opt_in,
    {{ days_between('customers.signup_date', 'as_of.as_of_date') }} as tenure_days,
    -- lifetimes and classic RFM (NULL without a completed order)
    customer_orders.frequency,
    customer_orders.recency,
    customer_orders.{{ adapter.quote("T") }},
    customer_orders.monetary_value,
    customer_orders.first_purchase_date,
    customer_orders.last_purchase_date,
    customer_orders.days_since_last_order,
    coalesce(customer_orders.orders_count, 0) as orders_count,
    {{ to_money('coalesce(customer_orders.net_revenue, 0)') }} as net_revenue,
    customer_orders.avg_order_value,
    customer_orders.rfm_recency_score,
    customer_orders.rfm_frequency_score,
    customer_orders.rfm_monetary_score,
    customer_orders.rfm_segment,
    -- loyalty: behavioural
    customer_orders.purchase_days_per_year,
    -- loyalty: attitudinal
    customer_surveys.nps_latest,
    customer_surveys.nps_avg,
    customer_surveys.csat_avg,
    customer_surveys.nps_class,
    -- loyalty: advocacy
    coalesce(customer_referrals.referrals_sent, 0) as referrals_sent,
    coalesce(customer_referrals.referrals_converted, 0) as referrals_converted,
    coalesce(customer_events.reviews_posted, 0) as reviews_posted,
    coalesce(customer_events.social_shares, 0) as social_shares,
    case
        when
            customer_referrals.referrals_sent_365d > 0
            or customer_events.reviews_posted > 0
            or customer_events.social_shares > 0
            then 'active'
        when customer_surveys.nps_class = 'promoter' or customer_surveys.csat_avg >= 4
            then 'passive'
        else 'none'
    end as advocate_type,
    -- other
    customer_referrals.referred_by_customer_id is not null as is_referred,
    customer_referrals.referred_by_customer_id,
    customer_orders.refund_rate,
    customer_orders.discount_share,
    customer_orders.median_gap_days,
    -- no order at all: low, as for one purchase day (metrics.md)
    coalesce(customer_orders.churn_risk, 'low') as churn_risk,
    as_of.as_of_date
from customers
cross join as_of
left join customer_orders on customers.customer_id = customer_orders.customer_id
left join customer_surveys on customers.customer_id = customer_surveys.customer_id
left join customer_events on customers.customer_id = customer_events.customer_id
left join customer_referrals on customers.customer_id = customer_referrals.customer_id
order by customers.customer_id
