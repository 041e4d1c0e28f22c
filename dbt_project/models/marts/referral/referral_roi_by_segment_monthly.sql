-- referral_roi_by_segment over time, by REFERRAL COHORT: a referral and everything that
-- follows from it (conversion, reward, referred revenue) belong to the month of its
-- sent_at, so each month's rows add up to the overall table and conversion rate is a
-- cohort rate. program_cost of a month (referral_program_costs.month) is allocated to the
-- segments in proportion to that month's referrals_sent; the 'all' row carries the whole
-- month's cost (also for a month with costs but no referral). Sparse: a segment x month
-- row exists only when the segment sent a counted referral that month; an 'all' row for
-- every month with a counted referral or a program cost, up to as_of.
-- depends_on: {{ ref('int_referrals_by_segment') }}  (its tests stop the build when a referrer has no segment)
with as_of as (
    select as_of_date from {{ ref('int_as_of') }}
),

assignments as (
    select * from {{ ref('int_segment_assignments') }}
),

segment_names as (
    select segment_id, min(segment_name) as segment_name
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
        sent_month as month,
        count(distinct referrer_customer_id) as referrers,
        count(*) as referrals_sent,
        cast(sum(case when is_attributed_conversion then 1 else 0 end) as {{ dbt.type_bigint() }}) as referrals_converted,
        count(distinct case when is_attributed_conversion then referee_customer_id end) as referred_customers,
        sum(referred_revenue) as referred_revenue,
        sum(reward_cost) as reward_cost
    from referrals
    group by segment_id, sent_month
),

monthly_costs as (
    select costs.month, sum(costs.cost) as program_cost_total
    from {{ ref('stg_referral_program_costs') }} as costs
    cross join as_of
    where costs.month <= as_of.as_of_date
    group by costs.month
),

grid as (
    select segment_id, month from referral_stats
    union
    select 'all' as segment_id, month from monthly_costs
),

combined as (
    select
        grid.segment_id,
        segment_names.segment_name,
        grid.month,
        coalesce(referral_stats.referrers, 0) as referrers,
        coalesce(referral_stats.referrals_sent, 0) as referrals_sent,
        coalesce(referral_stats.referrals_converted, 0) as referrals_converted,
        coalesce(referral_stats.referred_customers, 0) as referred_customers,
        {{ to_money('coalesce(referral_stats.referred_revenue, 0)') }} as referred_revenue,
        {{ to_money('coalesce(referral_stats.reward_cost, 0)') }} as reward_cost,
        case
            when grid.segment_id = 'all' then {{ to_money('coalesce(monthly_costs.program_cost_total, 0)') }}
            when coalesce(all_stats.referrals_sent, 0) = 0 then cast(0 as {{ money_type() }})
            else {{ to_money('cast(coalesce(monthly_costs.program_cost_total, 0) as ' ~ type_double() ~ ') * coalesce(referral_stats.referrals_sent, 0) / all_stats.referrals_sent') }}
        end as program_cost
    from grid
    left join segment_names on grid.segment_id = segment_names.segment_id
    left join referral_stats
        on grid.segment_id = referral_stats.segment_id and grid.month = referral_stats.month
    left join referral_stats as all_stats
        on all_stats.segment_id = 'all' and grid.month = all_stats.month
    left join monthly_costs on grid.month = monthly_costs.month
)

select
    combined.segment_id,
    coalesce(combined.segment_name, 'All customers') as segment_name,
    combined.month,
    combined.referrers,
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
    combined.referrals_converted < {{ var('low_confidence_threshold') }} as low_confidence,
    as_of.as_of_date
from combined
cross join as_of
order by case when combined.segment_id = 'all' then 1 else 0 end, combined.segment_id, combined.month
