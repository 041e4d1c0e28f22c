{#- A model's custom schema (staging, intermediate, marts) is used as-is, without the
    target schema prefix (no `main_staging`). Models without a custom schema go to the
    target schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
