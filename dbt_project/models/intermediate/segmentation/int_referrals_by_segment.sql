-- Every counted referral with the facts the referral ROI marts add up, listed once under
-- its REFERRER's segment of the latest run and once under 'all'. A left join: a referrer
-- without a segment gives one row with a NULL segment_id, which the not_null test turns
-- into an error instead of a referral silently missing from the ROI marts.
with

attribution as (
    select * from {{ ref('int_referral_attribution') }}
),

assignments as (
    select * from {{ ref('int_customers_by_segment') }}
),

counted_referrals as (
    select * from attribution
    where is_counted
)

select
    assignments.segment_id,
    assignments.segment_name,
    counted_referrals.referral_id,
    counted_referrals.referrer_customer_id,
    counted_referrals.referee_customer_id,
    counted_referrals.sent_month,
    counted_referrals.is_attributed_conversion,
    counted_referrals.referred_revenue,
    counted_referrals.reward_cost
from counted_referrals
left join assignments on counted_referrals.referrer_customer_id = assignments.customer_id
order by assignments.segment_id, counted_referrals.referral_id
