{#- The SQL that differs between the engines the project runs on: DuckDB (target dev, the
    nightly run) and Spark (target spark, issue #12). Each macro dispatches to
    `duckdb__` (the SQL DuckDB has always run, unchanged), `spark__` and, where a standard
    form exists, `default__`. Written so both engines give the same rows. -#}

{#- A double rounded to `digits` decimals the way DuckDB rounds one: the double's exact
    binary value rounded half away from zero (round(2.675, 2) = 2.67: the double is
    2.67499999...). Spark's round() rounds the double's shortest decimal form instead
    (2.675 -> 2.68), so on Spark the value is scaled, p = x * 10^digits, and when p is
    exactly an integer and a half the error of that product (Dekker's exact product, with
    x split in two halves of 26 bits; 10^digits has few enough bits to need no split) says
    on which side the exact value lies. Exact for |x| < 2^53 / 10^digits and digits <= 15;
    the project rounds ratios and amounts to 4 or 6 digits. -#}
{% macro round_double(expr, digits) -%}
    {{ return(adapter.dispatch('round_double', 'referral_segments')(expr, digits)) }}
{%- endmacro %}
{% macro default__round_double(expr, digits) -%}
    round({{ expr }}, {{ digits }})
{%- endmacro %}
{% macro spark__round_double(expr, digits) -%}
    {%- set x = '(' ~ expr ~ ')' -%}
    {%- set scale = 'cast(1' ~ ('0' * digits) ~ ' as double)' -%}
    {%- set p = '(' ~ x ~ ' * ' ~ scale ~ ')' -%}
    {%- set split = '(cast(134217729 as double) * ' ~ x ~ ')' -%}
    {%- set x_hi = '(' ~ split ~ ' - (' ~ split ~ ' - ' ~ x ~ '))' -%}
    {%- set x_lo = '(' ~ x ~ ' - ' ~ x_hi ~ ')' -%}
    {%- set error = '((' ~ x_hi ~ ' * ' ~ scale ~ ' - ' ~ p ~ ') + ' ~ x_lo ~ ' * ' ~ scale ~ ')' -%}
    (case
        when {{ p }} - floor({{ p }}) = 0.5
            then case
                when {{ error }} > 0 or ({{ error }} = 0 and {{ p }} > 0) then ceil({{ p }})
                else floor({{ p }})
            end
        else round({{ p }}, 0)
    end / {{ scale }})
{%- endmacro %}

{#- Sorted list of the non-NULL values of expr in a group (an aggregate). -#}
{% macro sorted_list_agg(expr) -%}
    {{ return(adapter.dispatch('sorted_list_agg', 'referral_segments')(expr)) }}
{%- endmacro %}
{% macro duckdb__sorted_list_agg(expr) -%}
    list_sort(list({{ expr }}))
{%- endmacro %}
{% macro spark__sorted_list_agg(expr) -%}
    sort_array(collect_list({{ expr }}))
{%- endmacro %}

{#- Number of elements of a list. -#}
{% macro list_size(list_expr) -%}
    {{ return(adapter.dispatch('list_size', 'referral_segments')(list_expr)) }}
{%- endmacro %}
{% macro duckdb__list_size(list_expr) -%}
    len({{ list_expr }})
{%- endmacro %}
{% macro spark__list_size(list_expr) -%}
    size({{ list_expr }})
{%- endmacro %}

{#- Element `index` of a list, counting from 1. -#}
{% macro list_element(list_expr, index) -%}
    {{ return(adapter.dispatch('list_element', 'referral_segments')(list_expr, index)) }}
{%- endmacro %}
{% macro duckdb__list_element(list_expr, index) -%}
    {{ list_expr }}[{{ index }}]
{%- endmacro %}
{% macro spark__list_element(list_expr, index) -%}
    element_at({{ list_expr }}, cast({{ index }} as int))
{%- endmacro %}

{#- Integer division of two integers >= 0 (where DuckDB's `//` and Spark's `div` agree). -#}
{% macro integer_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('integer_divide', 'referral_segments')(numerator, denominator)) }}
{%- endmacro %}
{% macro duckdb__integer_divide(numerator, denominator) -%}
    {{ numerator }} // {{ denominator }}
{%- endmacro %}
{% macro spark__integer_divide(numerator, denominator) -%}
    {{ numerator }} div {{ denominator }}
{%- endmacro %}

{#- Value of `value` in the row with the largest `key` of a group (an aggregate). -#}
{% macro arg_max(value, key) -%}
    {{ return(adapter.dispatch('arg_max', 'referral_segments')(value, key)) }}
{%- endmacro %}
{% macro duckdb__arg_max(value, key) -%}
    arg_max({{ value }}, {{ key }})
{%- endmacro %}
{% macro spark__arg_max(value, key) -%}
    max_by({{ value }}, {{ key }})
{%- endmacro %}

{#- `not materialized` after a CTE's `as`: DuckDB inlines the CTE wherever it is read
    instead of holding its rows in memory. Spark always inlines a CTE: nothing to say. -#}
{% macro cte_not_materialized() -%}
    {{ return(adapter.dispatch('cte_not_materialized', 'referral_segments')()) }}
{%- endmacro %}
{% macro default__cte_not_materialized() -%}{%- endmacro %}
{% macro duckdb__cte_not_materialized() -%}not materialized{%- endmacro %}

{#- `expr`, but the query fails with `message` (a SQL string expression) when expr is
    NULL, so a broken contract stops the run with a clear error. Engines without such a
    function rely on the data tests. -#}
{% macro fail_when_null(expr, message) -%}
    {{ return(adapter.dispatch('fail_when_null', 'referral_segments')(expr, message)) }}
{%- endmacro %}
{% macro default__fail_when_null(expr, message) -%}{{ expr }}{%- endmacro %}
{% macro duckdb__fail_when_null(expr, message) -%}
    case when {{ expr }} is null then error({{ message }}) else {{ expr }} end
{%- endmacro %}
{% macro spark__fail_when_null(expr, message) -%}
    case when {{ expr }} is null then raise_error({{ message }}) else {{ expr }} end
{%- endmacro %}

{#- 8-byte float (dbt.type_float() is a 4-byte REAL on DuckDB). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'referral_segments')()) }}
{%- endmacro %}
{% macro default__type_double() -%}double precision{%- endmacro %}
{% macro duckdb__type_double() -%}double{%- endmacro %}
{% macro spark__type_double() -%}double{%- endmacro %}

{#- Amount in the base currency: amount * rate_to_base, the exact decimal product rounded
    to 4 decimals. DuckDB multiplies decimal(38,4) by decimal(38,8) exactly (widened so
    large amounts cannot overflow). Spark caps a product's precision at 38 digits by
    cutting its scale to 6, which would round twice (to 6, then to 4 decimals): a
    decimal(19,4) (every money amount fits) times a decimal(18,8) is exactly
    decimal(38,12). -#}
{% macro to_base_currency(amount, rate) -%}
    {{ return(adapter.dispatch('to_base_currency', 'referral_segments')(amount, rate)) }}
{%- endmacro %}
{% macro default__to_base_currency(amount, rate) -%}
    cast(round(cast({{ amount }} as decimal(38,4)) * cast({{ rate }} as decimal(38,8)), 4) as {{ money_type() }})
{%- endmacro %}
{% macro spark__to_base_currency(amount, rate) -%}
    cast(round(cast({{ amount }} as decimal(19,4)) * cast({{ rate }} as decimal(18,8)), 4) as {{ money_type() }})
{%- endmacro %}

{#- A relation of (table_schema, table_name, column_name): every column of every table
    and view in `schemas` (their names without the Spark schema prefix), for the tests
    that check what the schemas hold. DuckDB: information_schema.columns (the caller
    filters it by schema). Spark 4.0 has no information_schema: the columns are listed
    when the test runs, from dbt's adapter, as a VALUES list. -#}
{% macro schema_columns(schemas) -%}
    {{ return(adapter.dispatch('schema_columns', 'referral_segments')(schemas)) }}
{%- endmacro %}
{% macro default__schema_columns(schemas) -%}
    information_schema.columns
{%- endmacro %}
{% macro spark__schema_columns(schemas) -%}
    {%- set rows = [] -%}
    {%- if execute -%}
        {%- set existing = run_query('show databases').columns[0].values() | map('lower') | list -%}
        {%- for schema in schemas if (schema_prefix() ~ schema) in existing -%}
            {%- for table in run_query('show tables in `' ~ schema_prefix() ~ schema ~ '`')
                if not table['isTemporary'] -%}
                {%- set relation = api.Relation.create(
                    schema=schema_prefix() ~ schema, identifier=table['tableName']) -%}
                {%- for column in adapter.get_columns_in_relation(relation) -%}
                    {%- do rows.append("('" ~ schema ~ "', '" ~ table['tableName'] ~ "', '"
                        ~ column.name | replace("'", "\\'") ~ "')") -%}
                {%- endfor -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if rows -%}
        (select * from values {{ rows | join(', ') }} as listed (table_schema, table_name, column_name))
    {%- else -%}
        (
            select
                cast(null as string) as table_schema,
                cast(null as string) as table_name,
                cast(null as string) as column_name
            where false
        )
    {%- endif %}
{%- endmacro %}
