-- The post-segmentation marts must read the segments of THIS run: the newest as_of_date
-- of marts.customer_segments equals int_as_of (fails when segmentation has not run yet
-- for this as-of date, or wrote nothing). Its only parent is a post_segmentation model, so
-- the first dbt stage (everything but tag:post_segmentation) does not pick it up.
select *
from {{ ref('int_segmentation_run') }}
where
    segmentation_as_of_date is null
    or segmentation_as_of_date <> as_of_date
    or segmented_customers = 0
