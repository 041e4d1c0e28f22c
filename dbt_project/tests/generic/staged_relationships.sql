{#- Generic test of an incremental staging model: every non-NULL `column_name` of the
    rows its last build staged (`staged_rows_condition`; every row after a first build or
    a rebuild) is a `field` of `to`, as dbt's `relationships`.  The rows staged on
    earlier nights passed it then, and a parent leaves `to` only by erasure, which
    rebuilds every staging model (its signature changes). -#}
{% test staged_relationships(model, column_name, to, field) %}
with child as (
    select {{ column_name }} as from_field
    from {{ model }} as tonight
    where
        {{ column_name }} is not null
        and {{ staged_rows_condition(model, 'tonight.source_export_date') }}
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
)

select child.from_field
from child
left join parent on child.from_field = parent.to_field
where parent.to_field is null
{% endtest %}
