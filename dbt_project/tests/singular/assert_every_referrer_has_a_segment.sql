{{ config(tags=['post_segmentation']) }}
-- A referral belongs to its referrer's segment: every counted referral's referrer must be
-- in the latest segmentation run, otherwise referral_roi_by_segment would silently lose it.
select attribution.referral_id, attribution.referrer_customer_id
from {{ ref('int_referral_attribution') }} as attribution
left join {{ ref('int_segment_assignments') }} as assignments
    on attribution.referrer_customer_id = assignments.customer_id
   and not assignments.is_all_row
where attribution.is_counted
  and assignments.customer_id is null
