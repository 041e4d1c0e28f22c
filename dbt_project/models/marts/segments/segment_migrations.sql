-- Customers moving between segments, for EVERY pair of consecutive segmentation runs in
-- history (from_as_of_date -> to_as_of_date); the latest pair has is_latest = true.
-- A customer absent from the earlier run comes from '(none)'; one absent from the later
-- run goes to '(none)'. share_of_from = customers / customers of from_segment_id in the
-- earlier run (for '(none)': of all customers new in the later run).
-- Computed from the spells of segment_history, so the work follows spells and
-- runs x segments, not runs x customers. For a pair p -> r and a segment s:
--   entries: a spell beginning at r moves its customer from the spell that ended at r
--            (previous_segment_id) or from '(none)' (new in r);
--   leavers: exits(s, r) (spells of s ending at r) not followed by a spell go to '(none)';
--   stayers: size(s, p) - exits(s, r), size(s, p) = running sum of entries - exits to p.
-- Names are the segment's in each run (history.segment_centroids, macro segment_name).
with history as (
    select
        customer_id,
        segment_id,
        valid_from,
        valid_to,
        previous_segment_id
    from {{ ref('segment_history') }}
),

centroids as (
    select
        as_of_date,
        segment_id,
        segment_name
    from {{ source('history', 'segment_centroids') }}
),

-- every run: each run with clustered customers wrote centroids, and every spell begins and
-- ends at a run (a run of prospects only writes no centroid)
run_dates as (
    select as_of_date from centroids
    union
    select valid_from as as_of_date from history
    union
    select valid_to as as_of_date from history
    where valid_to is not null
),

runs as (
    select
        as_of_date as to_as_of_date,
        lag(as_of_date) over (
            order by as_of_date
        ) as from_as_of_date
    from run_dates
),

pairs as (
    select
        from_as_of_date,
        to_as_of_date
    from runs
    where from_as_of_date is not null
),

names as (
    select
        as_of_date,
        segment_id,
        min(segment_name) as segment_name
    from centroids
    group by as_of_date, segment_id
),

entries as (
    select
        valid_from as to_as_of_date,
        coalesce(previous_segment_id, '(none)') as from_segment_id,
        segment_id as to_segment_id,
        count(*) as customers
    from history
    group by valid_from, coalesce(previous_segment_id, '(none)'), segment_id
),

exits as (
    select
        valid_to as to_as_of_date,
        segment_id,
        count(*) as customers
    from history
    where valid_to is not null
    group by valid_to, segment_id
),

entered as (
    select
        to_as_of_date,
        to_segment_id as segment_id,
        sum(customers) as customers
    from entries
    group by to_as_of_date, to_segment_id
),

moved_out as (
    select
        to_as_of_date,
        from_segment_id as segment_id,
        sum(customers) as customers
    from entries
    where from_segment_id <> '(none)'
    group by to_as_of_date, from_segment_id
),

segments as (
    select distinct segment_id from entered
),

-- every run x segment: its exits and its size after the run
sizes as (
    select
        runs.to_as_of_date as as_of_date,
        segments.segment_id,
        coalesce(exits.customers, 0) as exits,
        sum(coalesce(entered.customers, 0) - coalesce(exits.customers, 0)) over (
            partition by segments.segment_id
            order by runs.to_as_of_date
            rows between unbounded preceding and current row
        ) as customers
    from runs
    cross join segments
    left join entered
        on
            runs.to_as_of_date = entered.to_as_of_date
            and segments.segment_id = entered.segment_id
    left join exits
        on
            runs.to_as_of_date = exits.to_as_of_date
            and segments.segment_id = exits.segment_id
),

stayers as (
    select
        pairs.to_as_of_date,
        earlier.segment_id as from_segment_id,
        earlier.segment_id as to_segment_id,
        earlier.customers - later.exits as customers
    from pairs
    inner join sizes as earlier on pairs.from_as_of_date = earlier.as_of_date
    inner join sizes as later
        on
            pairs.to_as_of_date = later.as_of_date
            and earlier.segment_id = later.segment_id
),

leavers as (
    select
        exits.to_as_of_date,
        exits.segment_id as from_segment_id,
        '(none)' as to_segment_id,
        exits.customers - coalesce(moved_out.customers, 0) as customers
    from exits
    left join moved_out
        on
            exits.to_as_of_date = moved_out.to_as_of_date
            and exits.segment_id = moved_out.segment_id
),

flows as (
    select * from entries
    union all
    select * from stayers
    union all
    select * from leavers
),

counted as (
    select
        pairs.from_as_of_date,
        pairs.to_as_of_date,
        flows.from_segment_id,
        flows.to_segment_id,
        cast(sum(flows.customers) as {{ dbt.type_bigint() }}) as customers
    from flows
    inner join pairs on flows.to_as_of_date = pairs.to_as_of_date
    group by pairs.from_as_of_date, pairs.to_as_of_date, flows.from_segment_id, flows.to_segment_id
    having sum(flows.customers) > 0
),

named as (
    select
        counted.from_as_of_date,
        counted.to_as_of_date,
        counted.from_segment_id,
        case
            when counted.from_segment_id = '(none)' then '(none)'
            else {{ segment_name('from_names.segment_name', 'counted.from_segment_id') }}
        end as from_segment_name,
        counted.to_segment_id,
        case
            when counted.to_segment_id = '(none)' then '(none)'
            else {{ segment_name('to_names.segment_name', 'counted.to_segment_id') }}
        end as to_segment_name,
        counted.customers
    from counted
    left join names as from_names
        on
            counted.from_as_of_date = from_names.as_of_date
            and counted.from_segment_id = from_names.segment_id
    left join names as to_names
        on
            counted.to_as_of_date = to_names.as_of_date
            and counted.to_segment_id = to_names.segment_id
)

select
    from_as_of_date,
    to_as_of_date,
    from_segment_id,
    from_segment_name,
    to_segment_id,
    to_segment_name,
    customers,
    {{ safe_ratio(
        'customers',
        'sum(customers) over (partition by to_as_of_date, from_segment_id)'
    ) }} as share_of_from,
    from_segment_id <> to_segment_id as is_migration,
    to_as_of_date = (
        select max(pairs.to_as_of_date) as to_as_of_date from pairs
    ) as is_latest
from named
order by to_as_of_date, from_segment_id, to_segment_id
