-- The identity crosswalk: which customer each system's own id (and each email hash it was
-- seen with) belongs to, maintained by ingest (pipelines/sources/identity.py). No clear
-- email. Erased customers removed; a hash made with another salt than the current one
-- (EMAIL_HASH_SALT changed, not re-ingested yet) cannot match anything, so it is NULL.
with identities as (
    select * from {{ source('raw', 'customer_identities') }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
)

select
    identities.source_system,
    identities.source_id,
    identities.customer_id,
    case
        when identities.salt_md5 = md5({{ email_hash_salt_literal() }})
            then identities.email_hash
    end as email_hash,
    identities.first_seen_export
from identities
left join erased on identities.customer_id = erased.customer_id
where erased.customer_id is null
order by
    identities.source_system,
    identities.source_id nulls last,
    identities.email_hash nulls last
