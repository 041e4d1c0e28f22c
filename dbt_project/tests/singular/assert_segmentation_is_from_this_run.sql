{{ config(tags=['post_segmentation']) }}
-- The post-segmentation marts must read the segments of THIS run: the newest as_of_date
-- of marts.customer_segments equals int_as_of (fails when segmentation has not run yet
-- for this as-of date, or wrote nothing).
select
    as_of.as_of_date,
    (select max(as_of_date) from {{ source('segmentation', 'customer_segments') }}) as segmentation_as_of_date
from {{ ref('int_as_of') }} as as_of
where (select max(as_of_date) from {{ source('segmentation', 'customer_segments') }}) is null
   or (select max(as_of_date) from {{ source('segmentation', 'customer_segments') }}) <> as_of.as_of_date
