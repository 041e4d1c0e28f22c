-- Counted referrals with their REFERRER's segment of the latest run (left join: NULL when
-- the referrer is not segmented, which the not_null test on segment_id turns into an error
-- instead of a referral silently missing from referral_roi_by_segment).
select
    attribution.referral_id,
    attribution.referrer_customer_id,
    assignments.segment_id,
    assignments.segment_name
from {{ ref('int_referral_attribution') }} as attribution
left join {{ ref('int_segment_assignments') }} as assignments
    on attribution.referrer_customer_id = assignments.customer_id
   and not assignments.is_all_row
where attribution.is_counted
order by attribution.referral_id
