{#- A model's custom schema (staging, intermediate, marts) is used as-is, without the
    target schema prefix (no `main_staging`). Models without a custom schema go to the
    target schema. On Spark, every schema gets the var schema_prefix (macro
    schema_prefix). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ schema_prefix() }}{{ target.schema }}
    {%- else -%}
        {{ schema_prefix() }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

{#- Prefix of every schema dbt builds into and reads its sources from
    (models/staging/_sources.yml): on Spark the var schema_prefix (default ''), so a night
    can be built beside the published schemas, e.g. under `n20261121_staging`, and swapped
    in later; on DuckDB none, ever (a night there is built in a file of its own,
    pipelines/dbt.py). Lower-case letters, digits and underscores only. -#}
{% macro schema_prefix() -%}
    {%- if target.type != 'spark' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set prefix = var('schema_prefix', '') or '' -%}
    {%- if modules.re.fullmatch('[a-z0-9_]*', prefix) is none -%}
        {{ exceptions.raise_compiler_error(
            "var schema_prefix must be lower-case letters, digits and underscores, not '"
            ~ prefix ~ "'") }}
    {%- endif -%}
    {{ return(prefix) }}
{%- endmacro %}
