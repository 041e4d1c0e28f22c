-- Customers who asked to be erased: listed in raw.erasure_requests by customer_id, or
-- whose email (any version ever exported) hashes to the hash of a requested email.
-- Every staging model drops these customers, so no mart can contain them.
with requests as (
    select
        customer_id,
        {{ hash_email('email') }} as email_hash
    from {{ source('raw', 'erasure_requests') }}
),

-- Customers' emails are hashed only when a request names an email: with none (most
-- nights) the join below has nothing to build and reads no customer.
email_requests as (
    select distinct email_hash
    from requests
    where email_hash is not null
),

erased as (
    select
        customer_id,
        'customer_id' as matched_by
    from requests
    where customer_id is not null

    union all

    select
        customers.customer_id,
        'email' as matched_by
    from {{ source('raw', 'customers') }} as customers
    inner join email_requests
        on {{ hash_email('customers.email') }} = email_requests.email_hash
    where customers.email is not null
)

select
    customer_id,
    min(matched_by) as matched_by
from erased
group by customer_id
order by customer_id
