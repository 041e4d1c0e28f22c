{#- Generic test of an incremental staging model: no two rows share `column_name`,
    checked for the keys its last build staged (`staged_rows_condition`), each counted
    over the whole table, so a row that a merge should have replaced fails it too.
    After a first build or a rebuild (every row staged) it is dbt's `unique`.  The rows
    staged on earlier nights passed it then; a night that changed ~0.5% of the records
    checks ~0.5% of the keys (bench/README.md). -#}
{% test staged_unique(model, column_name) %}
{%- set staged = staged_rows_condition(model, 'tonight.source_export_date') %}
select
    {{ column_name }} as unique_field,
    count(*) as n_records
from {{ model }}
where
    {{ column_name }} is not null
    {%- if staged != 'true' %}
        and {{ column_name }} in (
            select tonight.{{ column_name }} from {{ model }} as tonight
            where {{ staged }}
        )
    {%- endif %}
group by {{ column_name }}
having count(*) > 1
{% endtest %}
