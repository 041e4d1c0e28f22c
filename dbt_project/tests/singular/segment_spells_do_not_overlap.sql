-- A customer's spells in segment_history do not overlap: each ends after it begins, and
-- the next begins no earlier than this one ends (an open spell, valid_to NULL, is last).
-- One window over the spells: its cost follows the spells, not the runs.
with ordered as (
    select
        customer_id,
        valid_from,
        valid_to,
        lead(valid_from) over (
            partition by customer_id
            order by valid_from
        ) as next_valid_from
    from {{ ref('segment_history') }}
)

select
    customer_id,
    valid_from,
    valid_to,
    next_valid_from
from ordered
where
    valid_to <= valid_from
    or (next_valid_from is not null and (valid_to is null or valid_to > next_valid_from))
