-- One row per segmentation run (as_of_date) x customer, from history.segment_assignments
-- (erased customers removed), with the customer's segment in the run just before
-- (NULL when the customer was not in that run, or for the first run).
-- `not materialized`: DuckDB materialises a CTE read twice in memory; with the sort below it
-- ran out of the 1GB dbt pool at 10M customers on the second night (20M history rows).
with assignments as not materialized (
    select
        history.as_of_date,
        history.customer_id,
        min(history.segment_id) as segment_id,
        min(history.segment_name) as segment_name
    from {{ source('history', 'segment_assignments') }} as history
    left join {{ ref('stg_erased_customers') }} as erased
        on history.customer_id = erased.customer_id
    where erased.customer_id is null
    group by history.as_of_date, history.customer_id
),

runs as (
    select
        as_of_date,
        lag(as_of_date) over (
            order by as_of_date
        ) as previous_as_of_date
    from (select distinct as_of_date from assignments) as dates
)

select
    assignments.as_of_date,
    assignments.customer_id,
    assignments.segment_id,
    assignments.segment_name,
    runs.previous_as_of_date,
    previous.segment_id as previous_segment_id,
    previous.segment_name as previous_segment_name,
    coalesce(previous.segment_id <> assignments.segment_id, false) as has_changed_segment
from assignments
inner join runs on assignments.as_of_date = runs.as_of_date
left join assignments as previous
    on
        runs.previous_as_of_date = previous.as_of_date
        and assignments.customer_id = previous.customer_id
order by assignments.as_of_date, assignments.customer_id
