-- Events domain of customer_features: one row per customer with an event in the last 365
-- days (as_of - 365 < day <= as_of). Definitions: int_customer_events.yml.
with

as_of as (
    select * from {{ ref('int_as_of') }}
),

events as (
    select * from {{ ref('stg_events') }}
),

recent_events as (
    select events.*
    from events
    cross join as_of
    where
        cast(events.occurred_at as date) <= as_of.as_of_date
        and cast(events.occurred_at as date) > {{ add_days('as_of.as_of_date', -365) }}
)

select
    customer_id,
    cast(
        sum(case when event_type = 'review_posted' then 1 else 0 end) as {{ dbt.type_bigint() }}
    ) as reviews_posted,
    cast(
        sum(case when event_type = 'social_share' then 1 else 0 end) as {{ dbt.type_bigint() }}
    ) as social_shares
from recent_events
group by customer_id
order by customer_id
