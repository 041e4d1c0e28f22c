-- Customers moving between segments, for EVERY pair of consecutive segmentation runs in
-- history (from_as_of_date -> to_as_of_date); the latest pair has is_latest = true.
-- A customer absent from the earlier run comes from '(none)'; one absent from the later
-- run goes to '(none)'. share_of_from = customers / customers of from_segment_id in the
-- earlier run (for '(none)': of all customers new in the later run).
with history as (
    select * from {{ ref('segment_history') }}
),

runs as (
    select
        as_of_date as to_as_of_date,
        lag(as_of_date) over (
            order by as_of_date
        ) as from_as_of_date
    from (select distinct as_of_date from history) as dates
),

pairs as (
    select
        from_as_of_date,
        to_as_of_date
    from runs
    where from_as_of_date is not null
),

-- every customer of either run of a pair
people as (
    select
        pairs.from_as_of_date,
        pairs.to_as_of_date,
        history.customer_id
    from pairs
    inner join history on pairs.from_as_of_date = history.as_of_date
    union
    select
        pairs.from_as_of_date,
        pairs.to_as_of_date,
        history.customer_id
    from pairs
    inner join history on pairs.to_as_of_date = history.as_of_date
),

moves as (
    select
        people.from_as_of_date,
        people.to_as_of_date,
        coalesce(earlier.segment_id, '(none)') as from_segment_id,
        coalesce(earlier.segment_name, '(none)') as from_segment_name,
        coalesce(later.segment_id, '(none)') as to_segment_id,
        coalesce(later.segment_name, '(none)') as to_segment_name
    from people
    left join history as earlier
        on
            people.from_as_of_date = earlier.as_of_date
            and people.customer_id = earlier.customer_id
    left join history as later
        on
            people.to_as_of_date = later.as_of_date
            and people.customer_id = later.customer_id
),

counted as (
    select
        from_as_of_date,
        to_as_of_date,
        from_segment_id,
        min(from_segment_name) as from_segment_name,
        to_segment_id,
        min(to_segment_name) as to_segment_name,
        count(*) as customers
    from moves
    group by from_as_of_date, to_as_of_date, from_segment_id, to_segment_id
)

select
    counted.from_as_of_date,
    counted.to_as_of_date,
    counted.from_segment_id,
    counted.from_segment_name,
    counted.to_segment_id,
    counted.to_segment_name,
    counted.customers,
    {{ safe_ratio(
        'counted.customers',
        'sum(counted.customers) over '
        ~ '(partition by counted.to_as_of_date, counted.from_segment_id)'
    ) }} as share_of_from,
    counted.from_segment_id <> counted.to_segment_id as is_migration,
    counted.to_as_of_date = (
        select max(pairs.to_as_of_date) as to_as_of_date from pairs
    ) as is_latest
from counted
order by counted.to_as_of_date, counted.from_segment_id, counted.to_segment_id
