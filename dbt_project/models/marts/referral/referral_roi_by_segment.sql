-- Referral program performance and ROI per segment of the latest segmentation run, plus
-- one row segment_id = 'all'. A referral belongs to its REFERRER's segment. Definitions:
-- metrics.md "referral_roi_by_segment" and referral_roi_by_segment.yml.
with

as_of as (
    select * from {{ ref('int_as_of') }}
),

assignments as (
    select * from {{ ref('int_customers_by_segment') }}
),

referrals as (
    select * from {{ ref('int_referrals_by_segment') }}
),

program_costs as (
    select * from {{ ref('stg_referral_program_costs') }}
),

marketing_spend as (
    select * from {{ ref('stg_marketing_spend') }}
),

cohort_12m as (
    select * from {{ ref('int_customer_cohort_12m') }}
),

customer_features as (
    select * from {{ ref('customer_features') }}
),

segments as (
    select
        segment_id,
        min(segment_name) as segment_name,
        count(*) as customers
    from assignments
    group by segment_id
),

referral_stats as (
    select
        segment_id,
        {{ referral_stats() }}
    from referrals
    group by segment_id
),

program_cost_total as (
    select sum(program_costs.cost) as program_cost_total
    from program_costs
    cross join as_of
    where program_costs.month <= as_of.as_of_date
),

paid as (
    select
        sum(marketing_spend.spend) as spend,
        sum(marketing_spend.new_customers) as new_customers
    from marketing_spend
    cross join as_of
    where marketing_spend.month <= as_of.as_of_date
),

cohort as (
    select
        assignments.segment_id,
        cast(
            sum(case when customer_features.is_referred then 1 else 0 end)
            as {{ dbt.type_bigint() }}
        ) as cohort_referred,
        cast(
            sum(case when not customer_features.is_referred then 1 else 0 end)
            as {{ dbt.type_bigint() }}
        ) as cohort_nonreferred,
        sum(
            case when customer_features.is_referred then cohort_12m.revenue_12m else 0 end
        ) as revenue_12m_referred,
        sum(
            case when not customer_features.is_referred then cohort_12m.revenue_12m else 0 end
        ) as revenue_12m_nonreferred,
        cast(
            sum(
                case
                    when customer_features.is_referred and cohort_12m.is_retained_12m then 1
                    else 0
                end
            ) as {{ dbt.type_bigint() }}
        ) as retained_referred,
        cast(
            sum(
                case
                    when not customer_features.is_referred and cohort_12m.is_retained_12m then 1
                    else 0
                end
            ) as {{ dbt.type_bigint() }}
        ) as retained_nonreferred
    from assignments
    inner join cohort_12m on assignments.customer_id = cohort_12m.customer_id
    inner join customer_features on assignments.customer_id = customer_features.customer_id
    where cohort_12m.is_cohort_12m_eligible
    group by assignments.segment_id
),

combined as (
    select
        segments.segment_id,
        segments.segment_name,
        segments.customers,
        coalesce(referral_stats.referrers, 0) as referrers,
        coalesce(referral_stats.referrals_sent, 0) as referrals_sent,
        coalesce(referral_stats.referrals_converted, 0) as referrals_converted,
        coalesce(referral_stats.referred_customers, 0) as referred_customers,
        {{ to_money('coalesce(referral_stats.referred_revenue, 0)') }} as referred_revenue,
        {{ to_money('coalesce(referral_stats.reward_cost, 0)') }} as reward_cost,
        {{ allocated_program_cost(
            'segments.segment_id',
            'program_cost_total.program_cost_total',
            'referral_stats.referrals_sent',
            'all_stats.referrals_sent'
        ) }} as program_cost,
        {{ safe_money_ratio('paid.spend', 'paid.new_customers') }} as paid_cac,
        cohort.cohort_referred,
        cohort.cohort_nonreferred,
        cohort.revenue_12m_referred,
        cohort.revenue_12m_nonreferred,
        cohort.retained_referred,
        cohort.retained_nonreferred
    from segments
    left join referral_stats on segments.segment_id = referral_stats.segment_id
    left join referral_stats as all_stats on all_stats.segment_id = 'all'
    left join cohort on segments.segment_id = cohort.segment_id
    cross join program_cost_total
    cross join paid
)

select
    combined.segment_id,
    combined.segment_name,
    combined.customers,
    combined.referrers,
    {{ safe_ratio('combined.referrers', 'combined.customers') }} as share_rate,
    combined.referrals_sent,
    combined.referrals_converted,
    {{ safe_ratio('combined.referrals_converted', 'combined.referrals_sent') }}
        as referral_conversion_rate,
    combined.referred_customers,
    combined.referred_revenue,
    combined.reward_cost,
    combined.program_cost,
    {{ referral_roi_columns('combined') }},
    combined.paid_cac,
    {{ safe_money_ratio('combined.revenue_12m_referred', 'combined.cohort_referred') }}
        as clv_12m_referred,
    {{ safe_money_ratio('combined.revenue_12m_nonreferred', 'combined.cohort_nonreferred') }}
        as clv_12m_nonreferred,
    {{ safe_ratio('combined.retained_referred', 'combined.cohort_referred') }}
        as retention_12m_referred,
    {{ safe_ratio('combined.retained_nonreferred', 'combined.cohort_nonreferred') }}
        as retention_12m_nonreferred,
    combined.referrals_converted < {{ var('low_confidence_threshold') }} as low_confidence,
    as_of.as_of_date
from combined
cross join as_of
order by case when combined.segment_id = 'all' then 1 else 0 end, combined.segment_id
