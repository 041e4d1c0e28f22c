-- One row per (non-erased) customer: lifetimes purchase-model columns, classic RFM,
-- behavioural / attitudinal / advocacy loyalty, churn risk. Definitions: metrics.md and
-- customer_features.yml. Only completed orders with order_date::date <= as_of count as
-- purchases; surveys, events and referrals after as_of are ignored.
with as_of as (
    select as_of_date from {{ ref('int_as_of') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

purchase_days as (
    select
        purchase_days.*,
        {{ days_between(
            'lag(purchase_days.purchase_date) over (partition by purchase_days.customer_id order by purchase_days.purchase_date)',
            'purchase_days.purchase_date') }} as gap_days
    from {{ ref('int_purchase_days') }} as purchase_days
),

purchases as (
    select
        customer_id,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        count(*) as purchase_days,
        cast(sum(orders_count) as {{ dbt.type_bigint() }}) as orders_count,
        sum(amount_base) as net_revenue,
        sum(case when purchase_day_number > 1 then amount_base else 0 end) as repeat_revenue
    from purchase_days
    group by customer_id
),

-- The median gap, computed as percentile_cont(0.5) does (lo + (hi - lo) * 0.5 over the
-- sorted gaps, as a double), but from one sorted list per customer: DuckDB's per-group
-- quantile state made this CTE the slowest part of the nightly run (~20 s at 1M customers).
gaps as (
    select
        customer_id,
        cast(sorted_gaps[(len(sorted_gaps) + 1) // 2] as {{ type_double() }})
            + (cast(sorted_gaps[len(sorted_gaps) // 2 + 1] as {{ type_double() }})
               - cast(sorted_gaps[(len(sorted_gaps) + 1) // 2] as {{ type_double() }})) * 0.5
            as median_gap_days
    from (
        select customer_id, list_sort(list(gap_days)) as sorted_gaps
        from purchase_days
        where gap_days is not null
        group by customer_id
    ) as gap_lists
),

order_mix as (
    select
        orders.customer_id,
        cast(sum(case when orders.status = 'completed' then 1 else 0 end) as {{ dbt.type_bigint() }}) as completed_orders,
        cast(sum(case when orders.status = 'refunded' then 1 else 0 end) as {{ dbt.type_bigint() }}) as refunded_orders,
        sum(case when orders.status = 'completed' then orders.discount_amount_base else 0 end) as completed_discount,
        sum(case when orders.status = 'completed' then orders.amount_base + orders.discount_amount_base else 0 end) as completed_gross
    from {{ ref('stg_orders') }} as orders
    cross join as_of
    where orders.order_day <= as_of.as_of_date
    group by orders.customer_id
),

surveys as (
    select
        surveys.*,
        row_number() over (
            partition by surveys.customer_id, (surveys.nps is null)
            order by surveys.responded_at desc, surveys.response_id desc
        ) as nps_recency_rank
    from {{ ref('stg_surveys') }} as surveys
    cross join as_of
    where cast(surveys.responded_at as date) <= as_of.as_of_date
),

survey_stats as (
    select
        customer_id,
        max(case when nps is not null and nps_recency_rank = 1 then nps end) as nps_latest,
        avg(cast(nps as {{ type_double() }})) as nps_avg,
        avg(cast(csat as {{ type_double() }})) as csat_avg
    from surveys
    group by customer_id
),

event_stats as (
    select
        events.customer_id,
        cast(sum(case when events.event_type = 'review_posted' then 1 else 0 end) as {{ dbt.type_bigint() }}) as reviews_posted,
        cast(sum(case when events.event_type = 'social_share' then 1 else 0 end) as {{ dbt.type_bigint() }}) as social_shares
    from {{ ref('stg_events') }} as events
    cross join as_of
    where cast(events.occurred_at as date) <= as_of.as_of_date
      and cast(events.occurred_at as date) > {{ add_days('as_of.as_of_date', -365) }}
    group by events.customer_id
),

referral_stats as (
    select
        referrer_customer_id as customer_id,
        count(*) as referrals_sent,
        cast(sum(case when is_attributed_conversion then 1 else 0 end) as {{ dbt.type_bigint() }}) as referrals_converted,
        cast(sum(case when cast(sent_at as date) > {{ add_days('as_of_date', -365) }} then 1 else 0 end) as {{ dbt.type_bigint() }}) as referrals_sent_365d
    from {{ ref('int_referral_attribution') }}
    where is_counted
    group by referrer_customer_id
),

referred as (
    select
        referee_customer_id as customer_id,
        referrer_customer_id as referred_by_customer_id
    from {{ ref('int_referral_attribution') }}
    where is_attributed_conversion
),

base as (
    select
        customers.customer_id,
        customers.signup_date,
        customers.country,
        customers.acquisition_channel,
        customers.marketing_opt_in,
        as_of.as_of_date,
        purchases.first_purchase_date,
        purchases.last_purchase_date,
        purchases.purchase_days,
        purchases.repeat_revenue,
        coalesce(purchases.orders_count, 0) as orders_count,
        coalesce(purchases.net_revenue, 0) as net_revenue,
        {{ days_between('purchases.last_purchase_date', 'as_of.as_of_date') }} as days_since_last_order,
        {{ days_between('purchases.first_purchase_date', 'as_of.as_of_date') }} as t_days,
        gaps.median_gap_days,
        order_mix.completed_orders,
        order_mix.refunded_orders,
        order_mix.completed_discount,
        order_mix.completed_gross,
        survey_stats.nps_latest,
        survey_stats.nps_avg,
        survey_stats.csat_avg,
        coalesce(event_stats.reviews_posted, 0) as reviews_posted,
        coalesce(event_stats.social_shares, 0) as social_shares,
        coalesce(referral_stats.referrals_sent, 0) as referrals_sent,
        coalesce(referral_stats.referrals_converted, 0) as referrals_converted,
        coalesce(referral_stats.referrals_sent_365d, 0) as referrals_sent_365d,
        referred.referred_by_customer_id
    from customers
    cross join as_of
    left join purchases on customers.customer_id = purchases.customer_id
    left join gaps on customers.customer_id = gaps.customer_id
    left join order_mix on customers.customer_id = order_mix.customer_id
    left join survey_stats on customers.customer_id = survey_stats.customer_id
    left join event_stats on customers.customer_id = event_stats.customer_id
    left join referral_stats on customers.customer_id = referral_stats.customer_id
    left join referred on customers.customer_id = referred.customer_id
),

rfm_scores as (
    select
        customer_id,
        ntile(5) over (order by days_since_last_order desc, customer_id) as rfm_recency_score,
        ntile(5) over (order by orders_count, customer_id) as rfm_frequency_score,
        ntile(5) over (order by net_revenue, customer_id) as rfm_monetary_score
    from base
    where purchase_days is not null
),

rfm as (
    select
        rfm_scores.*,
        cast(floor((rfm_frequency_score + rfm_monetary_score + 1) / 2.0) as integer) as rfm_fm_score
    from rfm_scores
),

features as (
    select
        base.*,
        rfm.rfm_recency_score,
        rfm.rfm_frequency_score,
        rfm.rfm_monetary_score,
        case
            when rfm.rfm_recency_score is null then null
            when rfm.rfm_recency_score = 5 and rfm.rfm_fm_score >= 4 then 'Champions'
            when rfm.rfm_recency_score in (3, 4) and rfm.rfm_fm_score >= 4 then 'Loyal'
            when rfm.rfm_recency_score in (4, 5) and rfm.rfm_fm_score in (2, 3) then 'Potential loyalist'
            when rfm.rfm_recency_score = 5 and rfm.rfm_fm_score = 1 then 'New'
            when rfm.rfm_recency_score = 4 and rfm.rfm_fm_score = 1 then 'Promising'
            when rfm.rfm_recency_score = 3 and rfm.rfm_fm_score = 3 then 'Need attention'
            when rfm.rfm_recency_score = 3 and rfm.rfm_fm_score in (1, 2) then 'About to sleep'
            when rfm.rfm_recency_score in (1, 2) and rfm.rfm_fm_score = 5 then 'Cannot lose'
            when rfm.rfm_recency_score in (1, 2) and rfm.rfm_fm_score in (3, 4) then 'At risk'
            when rfm.rfm_recency_score = 1 and rfm.rfm_fm_score = 1 then 'Lost'
            else 'Hibernating'
        end as rfm_segment,
        case
            when base.nps_latest is null then null
            when base.nps_latest >= 9 then 'promoter'
            when base.nps_latest >= 7 then 'passive'
            else 'detractor'
        end as nps_class
    from base
    left join rfm on base.customer_id = rfm.customer_id
)

select
    customer_id,
    signup_date,
    country,
    acquisition_channel,
    marketing_opt_in,
    {{ days_between('signup_date', 'as_of_date') }} as tenure_days,
    -- lifetimes summary_data_from_transaction_data(freq='D', observation_period_end=as_of)
    purchase_days - 1 as frequency,
    {{ days_between('first_purchase_date', 'last_purchase_date') }} as recency,
    t_days as {{ adapter.quote("T") }},
    case when purchase_days is null then null
         when purchase_days = 1 then cast(0 as {{ money_type() }})
         else {{ safe_money_ratio('repeat_revenue', 'purchase_days - 1') }} end as monetary_value,
    -- classic RFM
    first_purchase_date,
    last_purchase_date,
    days_since_last_order,
    orders_count,
    {{ to_money('net_revenue') }} as net_revenue,
    {{ safe_money_ratio('net_revenue', 'orders_count') }} as avg_order_value,
    rfm_recency_score,
    rfm_frequency_score,
    rfm_monetary_score,
    rfm_segment,
    -- loyalty: behavioural
    case when purchase_days is null then null
         else round(cast(purchase_days as {{ type_double() }}) / (case when t_days > 1 then t_days else 1 end) * 365, 6)
    end as purchase_days_per_year,
    -- loyalty: attitudinal
    nps_latest,
    round(nps_avg, 6) as nps_avg,
    round(csat_avg, 6) as csat_avg,
    nps_class,
    -- loyalty: advocacy
    referrals_sent,
    referrals_converted,
    reviews_posted,
    social_shares,
    case
        when referrals_sent_365d > 0 or reviews_posted > 0 or social_shares > 0 then 'active'
        when nps_class = 'promoter' or csat_avg >= 4 then 'passive'
        else 'none'
    end as advocate_type,
    -- other
    referred_by_customer_id is not null as is_referred,
    referred_by_customer_id,
    {{ safe_ratio('refunded_orders', 'completed_orders + refunded_orders') }} as refund_rate,
    {{ safe_ratio('completed_discount', 'completed_gross') }} as discount_share,
    round(median_gap_days, 6) as median_gap_days,
    case
        when purchase_days >= 2
             and days_since_last_order > 2 * median_gap_days
             and days_since_last_order > 90 then 'high'
        when days_since_last_order > median_gap_days then 'medium'
        else 'low'
    end as churn_risk,
    as_of_date
from features
order by customer_id
