-- 12-month value and retention of each customer with a completed order:
-- revenue_12m = completed revenue on days first_purchase_date <= day < first + 365;
-- is_retained_12m = a completed order on a day >= first + 365 (and <= as_of);
-- is_cohort_12m_eligible = first_purchase_date <= as_of - 365 (a full year observed).
with purchase_days as (
    select * from {{ ref('int_purchase_days') }}
),

firsts as (
    select
        customer_id,
        min(purchase_date) as first_purchase_date
    from purchase_days
    group by customer_id
)

select
    firsts.customer_id,
    firsts.first_purchase_date,
    firsts.first_purchase_date <= {{ add_days('as_of.as_of_date', -365) }}
        as is_cohort_12m_eligible,
    {{ to_money(
        'sum(case when purchase_days.purchase_date < '
        ~ add_days('firsts.first_purchase_date', 365)
        ~ ' then purchase_days.amount_base else 0 end)'
    ) }} as revenue_12m,
    max(
        case
            when purchase_days.purchase_date >= {{ add_days('firsts.first_purchase_date', 365) }}
                then 1
            else 0
        end
    ) = 1 as is_retained_12m
from firsts
inner join purchase_days on firsts.customer_id = purchase_days.customer_id
cross join {{ ref('int_as_of') }} as as_of
group by firsts.customer_id, firsts.first_purchase_date, as_of.as_of_date
order by firsts.customer_id
