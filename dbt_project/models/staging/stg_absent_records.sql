-- Records the newest full export of their table lacked: still in raw and staging (a CRM
-- often exports active records only), listed here so a deletion in the CRM is visible.
with changes as (
    select * from {{ source('raw', 'record_presence') }}
),

latest_change as (
    select
        table_name,
        key,
        {{ arg_max('present', 'export_date') }} as present,
        max(export_date) as changed_on
    from changes
    group by table_name, key
)

select
    table_name,
    key as record_key,
    changed_on as absent_since
from latest_change
where not present
order by table_name, record_key
