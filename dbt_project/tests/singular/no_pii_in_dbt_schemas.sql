{{ config(tags=['post_segmentation']) }}
-- depends_on: {{ ref('referral_roi_by_segment') }}
-- (attached to a mart of the last dbt stage, so it runs once the night's schemas are built)
-- PII never leaves raw: no email / name / phone column in staging, intermediate or marts,
-- and no email hash in intermediate or marts (hashes stay in staging for matching only).
select
    table_schema,
    table_name,
    column_name
from {{ schema_columns(['staging', 'intermediate', 'marts']) }}
where
    (
        lower(table_schema) in ('staging', 'intermediate', 'marts')
        and lower(column_name) in ('email', 'referee_email', 'first_name', 'last_name', 'phone')
    )
    or (
        lower(table_schema) in ('intermediate', 'marts')
        and lower(column_name) like '%email%'
    )
