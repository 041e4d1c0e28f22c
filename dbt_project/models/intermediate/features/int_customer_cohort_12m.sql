-- 12-month value and retention of each customer with a completed order:
-- revenue_12m = completed revenue on days first_purchase_date <= day < first + 365;
-- is_retained_12m = a completed order on a day >= first + 365 (and <= as_of);
-- both from the customer's order history (int_customer_order_history, incremental); here
-- is_cohort_12m_eligible = first_purchase_date <= as_of - 365 (a full year observed).
with

as_of as (
    select * from {{ ref('int_as_of') }}
),

order_history as (
    select * from {{ ref('int_customer_order_history') }}
)

select
    order_history.customer_id,
    order_history.first_purchase_date,
    order_history.first_purchase_date <= {{ add_days('as_of.as_of_date', -365) }}
        as is_cohort_12m_eligible,
    order_history.revenue_12m,
    order_history.is_retained_12m
from order_history
cross join as_of
where order_history.purchase_days is not null
order by order_history.customer_id
