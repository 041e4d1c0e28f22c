-- One row: this run's as-of date next to the as-of date and size of the segmentation run
-- the post-segmentation marts read (newest as_of_date of marts.customer_segments).
-- Tested (tests/singular/segmentation_is_from_this_run.sql) so that ROI is never
-- published on a stale or missing segmentation.
with segmentation as (
    select max(as_of_date) as segmentation_as_of_date
    from {{ source('marts', 'customer_segments') }}
)

select
    as_of.as_of_date,
    segmentation.segmentation_as_of_date,
    (
        select count(*) as segmented_customers
        from {{ source('marts', 'customer_segments') }} as segments
        where segments.as_of_date = segmentation.segmentation_as_of_date
    ) as segmented_customers
from {{ ref('int_as_of') }} as as_of
cross join segmentation
