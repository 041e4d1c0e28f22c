-- Customers who asked to be erased: listed in raw.erasure_requests by customer_id, or
-- whose email (any version ever exported) hashes to the hash of a requested email.
-- Every staging model drops these customers, so no mart can contain them.
with requests as (
    select
        customer_id,
        {{ hash_email('email') }} as email_hash
    from {{ source('raw', 'erasure_requests') }}
),

customer_emails as (
    select distinct
        customer_id,
        {{ hash_email('email') }} as email_hash
    from {{ source('raw', 'customers') }}
    where email is not null
),

erased as (
    select
        customer_id,
        'customer_id' as matched_by
    from requests
    where customer_id is not null

    union all

    select
        customer_emails.customer_id,
        'email' as matched_by
    from customer_emails
    inner join requests on customer_emails.email_hash = requests.email_hash
)

select
    customer_id,
    min(matched_by) as matched_by
from erased
group by customer_id
order by customer_id
