-- referral_roi_by_segment over time, by REFERRAL COHORT: a referral and everything that
-- follows from it (conversion, reward, referred revenue) belong to the month of its
-- sent_at, so each month's rows add up to the overall table and conversion rate is a
-- cohort rate. program_cost of a month (referral_program_costs.month) is allocated to the
-- segments in proportion to that month's referrals_sent; the 'all' row carries the whole
-- month's cost (also for a month with costs but no referral). Sparse: a segment x month
-- row exists only when the segment sent a counted referral that month; an 'all' row for
-- every month with a counted referral or a program cost, up to as_of.
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

segment_names as (
    select
        segment_id,
        min(segment_name) as segment_name
    from assignments
    group by segment_id
),

referral_stats as (
    select
        segment_id,
        sent_month as month,
        {{ referral_stats() }}
    from referrals
    group by segment_id, sent_month
),

monthly_costs as (
    select
        program_costs.month,
        sum(program_costs.cost) as program_cost_total
    from program_costs
    cross join as_of
    where program_costs.month <= as_of.as_of_date
    group by program_costs.month
),

grid as (
    select
        segment_id,
        month
    from referral_stats
    union
    select
        'all' as segment_id,
        month
    from monthly_costs
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
        {{ allocated_program_cost(
            'grid.segment_id',
            'monthly_costs.program_cost_total',
            'referral_stats.referrals_sent',
            'all_stats.referrals_sent'
        ) }} as program_cost
    from grid
    left join segment_names on grid.segment_id = segment_names.segment_id
    left join referral_stats
        on grid.segment_id = referral_stats.segment_id and grid.month = referral_stats.month
    left join referral_stats as all_stats
        on grid.month = all_stats.month and all_stats.segment_id = 'all'
    left join monthly_costs on grid.month = monthly_costs.month
)

select
    combined.segment_id,
    coalesce(combined.segment_name, 'All customers') as segment_name,
    combined.month,
    combined.referrers,
    combined.referrals_sent,
    combined.referrals_converted,
    {{ safe_ratio('combined.referrals_converted', 'combined.referrals_sent') }}
        as referral_conversion_rate,
    combined.referred_customers,
    combined.referred_revenue,
    combined.reward_cost,
    combined.program_cost,
    {{ referral_roi_columns('combined') }},
    combined.referrals_converted < {{ var('low_confidence_threshold') }} as low_confidence,
    as_of.as_of_date
from combined
cross join as_of
order by
    case when combined.segment_id = 'all' then 1 else 0 end, combined.segment_id, combined.month
