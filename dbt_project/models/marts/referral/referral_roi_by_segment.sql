-- Referral program performance and ROI per segment of the latest segmentation run, plus
-- one row segment_id = 'all'. A referral belongs to its REFERRER's segment. Definitions:
-- metrics.md "referral_roi_by_segment" and referral_roi_by_segment.yml.
-- depends_on: {{ ref('int_referrals_by_segment') }}  (its tests stop the build when a referrer has no segment)
with as_of as (
    select as_of_date from {{ ref('int_as_of') }}
),

assignments as (
    select * from {{ ref('int_segment_assignments') }}
),

segments as (
    select
        segment_id,
        min(segment_name) as segment_name,
        count(*) as customers
    from assignments
    group by segment_id
),

referrals as (
    select
        assignments.segment_id,
        attribution.*
    from {{ ref('int_referral_attribution') }} as attribution
    inner join assignments on attribution.referrer_customer_id = assignments.customer_id
    where attribution.is_counted
),

referral_stats as (
    select
        segment_id,
        count(distinct referrer_customer_id) as referrers,
        count(*) as referrals_sent,
        cast(sum(case when is_attributed_conversion then 1 else 0 end) as {{ dbt.type_bigint() }}) as referrals_converted,
        count(distinct case when is_attributed_conversion then referee_customer_id end) as referred_customers,
        sum(referred_revenue) as referred_revenue,
        sum(reward_cost) as reward_cost
    from referrals
    group by segment_id
),

program_costs as (
    select sum(costs.cost) as program_cost_total
    from {{ ref('stg_referral_program_costs') }} as costs
    cross join as_of
    where costs.month <= as_of.as_of_date
),

paid as (
    select
        sum(spend.spend) as spend,
        sum(spend.new_customers) as new_customers
    from {{ ref('stg_marketing_spend') }} as spend
    cross join as_of
    where spend.month <= as_of.as_of_date
),

cohort as (
    select
        assignments.segment_id,
        cast(sum(case when features.is_referred then 1 else 0 end) as {{ dbt.type_bigint() }}) as cohort_referred,
        cast(sum(case when not features.is_referred then 1 else 0 end) as {{ dbt.type_bigint() }}) as cohort_nonreferred,
        sum(case when features.is_referred then cohort.revenue_12m else 0 end) as revenue_12m_referred,
        sum(case when not features.is_referred then cohort.revenue_12m else 0 end) as revenue_12m_nonreferred,
        cast(sum(case when features.is_referred and cohort.is_retained_12m then 1 else 0 end) as {{ dbt.type_bigint() }}) as retained_referred,
        cast(sum(case when not features.is_referred and cohort.is_retained_12m then 1 else 0 end) as {{ dbt.type_bigint() }}) as retained_nonreferred
    from assignments
    inner join {{ ref('int_customer_cohort_12m') }} as cohort on assignments.customer_id = cohort.customer_id
    inner join {{ ref('customer_features') }} as features on assignments.customer_id = features.customer_id
    where cohort.is_cohort_12m_eligible
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
        case
            when segments.segment_id = 'all' then {{ to_money('coalesce(program_costs.program_cost_total, 0)') }}
            when coalesce(all_stats.referrals_sent, 0) = 0 then cast(0 as {{ money_type() }})
            else {{ to_money('cast(coalesce(program_costs.program_cost_total, 0) as ' ~ type_double() ~ ') * coalesce(referral_stats.referrals_sent, 0) / all_stats.referrals_sent') }}
        end as program_cost,
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
    cross join program_costs
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
    {{ safe_ratio('combined.referrals_converted', 'combined.referrals_sent') }} as referral_conversion_rate,
    combined.referred_customers,
    combined.referred_revenue,
    combined.reward_cost,
    combined.program_cost,
    {{ to_money('combined.reward_cost + combined.program_cost') }} as total_cost,
    {{ safe_ratio('combined.referred_revenue * ' ~ var('gross_margin') ~ ' - (combined.reward_cost + combined.program_cost)', 'combined.reward_cost + combined.program_cost') }} as roi,
    {{ safe_money_ratio('combined.reward_cost + combined.program_cost', 'combined.referred_customers') }} as referral_cac,
    combined.paid_cac,
    {{ safe_money_ratio('combined.revenue_12m_referred', 'combined.cohort_referred') }} as clv_12m_referred,
    {{ safe_money_ratio('combined.revenue_12m_nonreferred', 'combined.cohort_nonreferred') }} as clv_12m_nonreferred,
    {{ safe_ratio('combined.retained_referred', 'combined.cohort_referred') }} as retention_12m_referred,
    {{ safe_ratio('combined.retained_nonreferred', 'combined.cohort_nonreferred') }} as retention_12m_nonreferred,
    combined.referrals_converted < {{ var('low_confidence_threshold') }} as low_confidence,
    as_of.as_of_date
from combined
cross join as_of
order by case when combined.segment_id = 'all' then 1 else 0 end, combined.segment_id
