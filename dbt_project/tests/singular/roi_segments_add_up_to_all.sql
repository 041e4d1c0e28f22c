{{ config(tags=['post_segmentation']) }}
-- The additive columns of referral_roi_by_segment's segment rows sum to its 'all' row
-- (program_cost is allocated with rounding, so it may differ by at most 0.0001 per segment).
with segments as (
    select
        sum(customers) as customers,
        sum(referrers) as referrers,
        sum(referrals_sent) as referrals_sent,
        sum(referrals_converted) as referrals_converted,
        sum(referred_customers) as referred_customers,
        sum(referred_revenue) as referred_revenue,
        sum(reward_cost) as reward_cost,
        sum(program_cost) as program_cost,
        count(*) as segments
    from {{ ref('referral_roi_by_segment') }}
    where segment_id <> 'all'
),

all_row as (
    select * from {{ ref('referral_roi_by_segment') }}
    where segment_id = 'all'
)

select
    segments.*,
    all_row.*
from segments
cross join all_row
where
    segments.customers <> all_row.customers
    or segments.referrers <> all_row.referrers
    or segments.referrals_sent <> all_row.referrals_sent
    or segments.referrals_converted <> all_row.referrals_converted
    or segments.referred_customers <> all_row.referred_customers
    or segments.referred_revenue <> all_row.referred_revenue
    or segments.reward_cost <> all_row.reward_cost
    or (
        all_row.referrals_sent > 0
        and abs(segments.program_cost - all_row.program_cost) > 0.0001 * segments.segments
    )
