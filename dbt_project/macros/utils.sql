{#- Small helpers shared by the models. Cross-database where engines differ. -#}

{#- Type of every money column (amounts in the base currency). -#}
{% macro money_type() -%}decimal(18,4){%- endmacro %}

{#- Type of FX rates (same as raw). -#}
{% macro rate_type() -%}decimal(18,8){%- endmacro %}

{#- Decimal money expression rounded to 4 decimals in the money type (exact, deterministic;
    a double: macro double_to_money). -#}
{% macro to_money(expr) -%}
    cast(round({{ expr }}, 4) as {{ money_type() }})
{%- endmacro %}

{#- A double expression as money: rounded to 4 decimals as DuckDB rounds a double (macro
    round_double), in the money type. -#}
{% macro double_to_money(expr) -%}
    cast({{ round_double(expr, 4) }} as {{ money_type() }})
{%- endmacro %}

{#- numerator / denominator rounded to 6 decimals; NULL when the denominator is 0 or NULL. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case when {{ denominator }} is null or {{ denominator }} = 0 then null
         else {{ round_double(
             'cast(' ~ numerator ~ ' as ' ~ type_double() ~ ') / cast(' ~ denominator ~ ' as ' ~ type_double() ~ ')', 6
         ) }} end
{%- endmacro %}

{#- Money divided by a count (a mean amount), as money rounded to 4 decimals; NULL when
    the denominator is 0 or NULL. -#}
{% macro safe_money_ratio(numerator, denominator) -%}
    case when {{ denominator }} is null or {{ denominator }} = 0 then null
         else {{ double_to_money(
             'cast(' ~ numerator ~ ' as ' ~ type_double() ~ ') / cast(' ~ denominator ~ ' as ' ~ type_double() ~ ')'
         ) }} end
{%- endmacro %}

{#- Whole days from first_date to second_date (second - first). -#}
{% macro days_between(first_date, second_date) -%}
    cast({{ dbt.datediff(first_date, second_date, 'day') }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{#- date + n days, as a DATE. -#}
{% macro add_days(date_expr, n) -%}
    cast({{ dbt.dateadd('day', n, date_expr) }} as date)
{%- endmacro %}

{#- Latest version of each record of a raw relation by its key: newest _export_date wins,
    then the newest updated_at (when the table has one), then the highest _line_number.
    Returns every raw column of the winning rows.  Only keys seen more than once are
    ranked: most records have one version, and a window over every row cost ~1 s per 10M
    rows with nothing to rank. -#}
{% macro latest_version(relation, key_columns, has_updated_at=true) -%}
    {%- set match -%}
        {%- for k in key_columns %}{% if not loop.first %} and {% endif %}multi.{{ k }} = src.{{ k }}{% endfor -%}
    {%- endset -%}
    with multi as (
        select {{ key_columns | join(', ') }}
        from {{ relation }}
        group by {{ key_columns | join(', ') }}
        having count(*) > 1
    )
    select src.*, 1 as _version_rank
    from {{ relation }} as src
    where not exists (select 1 from multi where {{ match }})
    union all
    select * from (
        select
            src.*,
            row_number() over (
                partition by {{ key_columns | join(', ') }}
                order by
                    _export_date desc,
                    {% if has_updated_at %}updated_at desc nulls last,{% endif %}
                    _line_number desc
            ) as _version_rank
        from {{ relation }} as src
        where exists (select 1 from multi where {{ match }})
    ) as versions
    where _version_rank = 1
{%- endmacro %}
