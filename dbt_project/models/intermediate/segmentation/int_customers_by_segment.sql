-- The customers of each segment of the latest segmentation run (source
-- marts.customer_segments, newest as_of_date only, erased customers removed), plus
-- every customer once more under segment_id 'all' ("All customers"), so that the
-- post-segmentation marts compute the 'all' row with the same GROUP BY as the segments.
-- depends_on: {{ ref('int_segmentation_run') }}  (its test stops the build on stale segments)
with segments as (
    select
        customer_id,
        segment_id,
        segment_name,
        as_of_date
    from {{ source('marts', 'customer_segments') }}
    where as_of_date = (
        select max(latest.as_of_date) as as_of_date
        from {{ source('marts', 'customer_segments') }} as latest
    )
),

kept as (
    select segments.*
    from segments
    left join {{ ref('stg_erased_customers') }} as erased
        on segments.customer_id = erased.customer_id
    where erased.customer_id is null
)

select
    customer_id,
    segment_id,
    segment_name,
    false as is_all_row,
    as_of_date as segmentation_as_of_date
from kept
union all
select
    customer_id,
    'all' as segment_id,
    'All customers' as segment_name,
    true as is_all_row,
    as_of_date as segmentation_as_of_date
from kept
order by segment_id, customer_id
