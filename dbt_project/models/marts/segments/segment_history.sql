-- One row per customer and segment spell, from history.segment_spells (erased customers
-- removed): an unbroken stay in one segment over consecutive segmentation runs, half-open
-- [valid_from, valid_to), valid_to NULL while current. Grows with change, not with nights
-- (docs/decisions.md, "Segment history as spells"). segment_name is the segment's name in
-- the run where the spell began (history.segment_centroids); previous_* is the customer's
-- spell that ended exactly when this one began (NULL for a first spell or a return after
-- an absence). The segment of each customer on date X:
--   where valid_from <= X and (valid_to > X or valid_to is null)
with spells as (
    select
        customer_id,
        segment_id,
        valid_from,
        valid_to
    from {{ source('history', 'segment_spells') }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
),

centroids as (
    select
        as_of_date,
        segment_id,
        segment_name
    from {{ source('history', 'segment_centroids') }}
),

-- `not materialized` (DuckDB; macro cte_not_materialized): read twice (the spell and its
-- predecessor); DuckDB would otherwise materialise it in memory, as it did with the per-run
-- history at 10M (bench/README.md).
kept as {{ cte_not_materialized() }} (
    select spells.*
    from spells
    left join erased on spells.customer_id = erased.customer_id
    where erased.customer_id is null
),

-- a segment's name per run (one row per feature in the centroids)
names as (
    select
        as_of_date,
        segment_id,
        min(segment_name) as segment_name
    from centroids
    group by as_of_date, segment_id
)

select
    kept.customer_id,
    kept.segment_id,
    {{ segment_name('names.segment_name', 'kept.segment_id') }} as segment_name,
    kept.valid_from,
    kept.valid_to,
    kept.valid_to is null as is_current,
    previous.segment_id as previous_segment_id,
    {{ segment_name('previous_names.segment_name', 'previous.segment_id') }}
        as previous_segment_name,
    coalesce(previous.segment_id <> kept.segment_id, false) as has_changed_segment
from kept
left join names
    on
        kept.valid_from = names.as_of_date
        and kept.segment_id = names.segment_id
left join kept as previous
    on
        kept.customer_id = previous.customer_id
        and kept.valid_from = previous.valid_to
left join names as previous_names
    on
        previous.valid_from = previous_names.as_of_date
        and previous.segment_id = previous_names.segment_id
order by kept.customer_id, kept.valid_from
