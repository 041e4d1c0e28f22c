{#- Incremental staging of the keyed tables (stg_customers, stg_orders, stg_referrals,
    stg_surveys, stg_events).

    Raw keeps every row of every export, so "latest version of each record" over all of
    raw costs more every night (bench/README.md: +13-17 s a night at 1M customers).
    Exports are ingested oldest first and the newest export date wins, so a night only
    needs the raw rows of the exports not staged yet: their latest versions replace the
    staged ones (strategy `replace_keys` below).  That equals a rebuild from all of raw
    only while what is staged is still true, so the model rebuilds itself from all of raw
    when any of these changed since it was staged, as recorded in `<model>__staged` by its
    post-hook:
    - an export it staged: re-ingested (file fingerprint);
    - an export older than the newest staged one arrived late;
    - the model's signature: its SQL (checksum) and what it applies to every row
      (`staging_signature_sql`: base currency, fx rates, salt, erasure requests and the
      erased customers).
    Raw row counts per export are recorded but do not decide: retention drops superseded
    versions (never a latest one), which staging does not hold.
    `dbt build --full-refresh` rebuilds as usual.  docs/decisions.md has the reasoning. -#}

{#- The config of an incremental staging model: `{{ config(**staging_model_config(...)) }}`.

    DuckDB: incremental, strategy `replace_keys` (below), what was staged recorded by the
    post-hook in `<model>__staged`.

    Spark: a plain `table`, rebuilt from all of raw every night. Replacing the staged rows
    of a batch's keys needs a DELETE or a MERGE, and that the staged state be swapped in
    with `create or replace table`: Spark has neither on plain Parquet tables, only on
    Delta or Iceberg, which this project cannot use (no Maven Central to fetch them).
    dbt-spark's own strategies on Parquet (append, insert_overwrite of whole partitions)
    would duplicate or lose the keys that an export changed. A rebuild reads all of raw,
    which costs more each night (bench/README.md) but gives the same rows as an
    incremental night (tests/dbt/test_incremental_staging.py: the last night equals a
    full refresh), with nothing to record and nothing to get out of step. -#}
{% macro staging_model_config(raw_table, unique_key) -%}
    {{ return(adapter.dispatch('staging_model_config', 'referral_segments')(raw_table, unique_key)) }}
{%- endmacro %}

{% macro default__staging_model_config(raw_table, unique_key) -%}
    {{ return({
        'materialized': 'incremental',
        'unique_key': unique_key,
        'incremental_strategy': 'replace_keys',
        'on_schema_change': 'sync_all_columns',
        'raw_table': raw_table,
        'post_hook': "{{ record_staged_exports('" ~ raw_table ~ "') }}",
    }) }}
{%- endmacro %}

{% macro spark__staging_model_config(raw_table, unique_key) -%}
    {{ return({'materialized': 'table', 'raw_table': raw_table}) }}
{%- endmacro %}

{% macro staged_state_relation() -%}
    {{ return(api.Relation.create(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__staged')) }}
{%- endmacro %}

{#- SQL expression: the model's signature (its SQL and what it applies to every row). -#}
{% macro staging_signature(signature_sql) -%}
    md5(concat_ws('|', '{{ model.checksum.checksum }}', {{ signature_sql }}))
{%- endmacro %}

{#- SELECT of (export_date, files, raw_rows) for every export in raw. -#}
{% macro raw_export_counts(source_relation) -%}
    select e.export_date, e.files, coalesce(r.raw_rows, 0) as raw_rows
    from {{ source('raw', 'exports') }} as e
    left join (
        select _export_date, count(*) as raw_rows
        from {{ source_relation }}
        group by _export_date
    ) as r on r._export_date = e.export_date
{%- endmacro %}

{#- Two CASE arms of a plan's rebuild reasons, shared by the staging models and the order
    history: the exports recorded at the last build (`recorded`: export_date, files) no
    longer match those raw holds now (`current`, the same columns):
    - a recorded export's files differ now (`reingested`);
    - an export not newer than the newest recorded one is not recorded (`late`): it
      arrived after a newer one was built on.
    `recorded` and `current` name relations or CTEs of the calling query. -#}
{% macro export_change_arms(recorded, current, reingested, late) -%}
                when exists (
                    select 1 from {{ recorded }}
                    left join {{ current }} on {{ current }}.export_date = {{ recorded }}.export_date
                    where {{ current }}.files is distinct from {{ recorded }}.files)
                    then '{{ reingested }}'
                when exists (
                    select 1 from {{ current }}
                    where {{ current }}.export_date <= (select max(export_date) from {{ recorded }})
                      and {{ current }}.export_date not in (select export_date from {{ recorded }}))
                    then '{{ late }}'
{%- endmacro %}

{#- {'mode': 'full' | 'rebuild' | 'incremental', 'reason': ..., 'watermark': date}.
    'full': not an incremental run (first build, --full-refresh, unit tests).  `table`
    defaults to the model's `raw_table` config (the strategy below has no other way to
    know it). -#}
{% macro staging_plan(table=none) -%}
    {%- set table = table or config.get('raw_table') -%}
    {%- if not execute or not is_incremental() -%}
        {{ return({'mode': 'full', 'reason': none, 'watermark': none}) }}
    {%- endif -%}
    {%- set source_relation = source('raw', table) -%}
    {%- set signature_sql = staging_signature_sql(table) -%}
    {%- set expected = staged_state_relation() -%}
    {%- set state = adapter.get_relation(
        database=expected.database, schema=expected.schema, identifier=expected.identifier) -%}
    {%- if state is none -%}
        {{ return({'mode': 'rebuild', 'reason': 'no record of what was staged', 'watermark': none}) }}
    {%- endif -%}
    {%- set query -%}
        with staged as (select * from {{ state }}),
        now as ({{ raw_export_counts(source_relation) }}),
        newest as (select max(export_date) as d from staged)
        select
            case
                when (select count(*) from staged) = 0
                    then 'no record of what was staged'
                when (select min(signature) from staged)
                        is distinct from {{ staging_signature(signature_sql) }}
                    then 'its SQL or what it applies to every row changed (base currency, fx rates, salt or erasure requests)'
                {{ export_change_arms(
                    'staged', 'now',
                    reingested='a staged export was re-ingested',
                    late='an export older than the newest staged one arrived') }}
            end as reason,
            cast((select d from newest) as varchar) as watermark
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[0] is not none -%}
        {{ return({'mode': 'rebuild', 'reason': row[0], 'watermark': none}) }}
    {%- endif -%}
    {{ return({'mode': 'incremental', 'reason': none, 'watermark': row[1]}) }}
{%- endmacro %}

{#- The raw rows of raw.<table> this run stages: all of them, or those of the exports
    not staged yet. -#}
{% macro staging_source(table) -%}
    {%- set source_relation = source('raw', table) -%}
    {%- set plan = staging_plan(table) -%}
    {%- if plan.mode == 'incremental' -%}
        (select * from {{ source_relation }} where _export_date > date '{{ plan.watermark }}')
    {%- else -%}
        {%- if plan.mode == 'rebuild' -%}
            {{ log(this.identifier ~ ': rebuilt from all of raw: ' ~ plan.reason, info=true) }}
        {%- endif -%}
        {{ source_relation }}
    {%- endif -%}
{%- endmacro %}

{#- Incremental strategy `replace_keys`: tonight's batch replaces the staged rows of its
    keys (all rows on a rebuild).  A small batch (raw stores versions, so a full export
    that changed ~0.5% of records is a ~0.5% batch) is a DELETE of its keys and an INSERT:
    the cost follows the change.  "Small": at most `replace_keys_small_batch` (dbt var,
    default 0.1) times the staged rows.  A large one (a rebuild, or a night that changed most
    records) builds a new table of the staged rows whose key is not in the batch plus the
    batch and swaps it in: dbt's delete+insert ran out of memory at 10M customers on a
    DELETE of ~60M keys with DuckDB's 1GB pool, where an anti-join and a table write spill
    to disk like the first night's build. -#}
{% macro get_incremental_replace_keys_sql(arg_dict) -%}
    {{ return(replace_rows_sql(
        arg_dict, staging_plan().mode == 'rebuild', arg_dict['temp_relation'],
        arg_dict['unique_key'])) }}
{%- endmacro %}

{#- The merge of both strategies (`replace_keys`, `replace_affected`): the target's rows
    whose key is in `replaced`.`replaced_key` (tonight's batch, or the affected
    customers) give way to the batch, by a DELETE and an INSERT when they are few, else
    by a new table swapped in (all of the batch on a `rebuild`).  `counted`: a noun to
    log the replaced keys' count with (`<n> <counted>`), or none. -#}
{% macro replace_rows_sql(arg_dict, rebuild, replaced, replaced_key, counted=none) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set batch = arg_dict['temp_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set cols = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set merging = target.incorporate(path={'identifier': target.identifier ~ '__merging'}) -%}
    {%- set small = false -%}
    {%- if not rebuild and execute -%}
        {%- set sizes = run_query(
            'select (select count(*) from ' ~ replaced ~ '), (select count(*) from ' ~ target ~ ')').rows[0] -%}
        {%- set small = sizes[0] <= var('replace_keys_small_batch', 0.1) * sizes[1] -%}
        {%- if counted -%}
            {{ log(this.identifier ~ ': ' ~ sizes[0] ~ ' ' ~ counted, info=true) }}
        {%- endif -%}
    {%- endif -%}
    {{ log(this.identifier ~ ': merged by ' ~ ('delete and insert' if small else 'a new table'), info=true) }}
    {%- set sql -%}
    {% if small -%}
    delete from {{ target }} where {{ key }} in (select {{ replaced_key }} from {{ replaced }});
    insert into {{ target }} ({{ cols }}) select {{ cols }} from {{ batch }}
    {%- else -%}
    drop table if exists {{ merging }};
    create table {{ merging }} as
    {% if not rebuild -%}
    select {{ cols }} from {{ target }} as kept
    where not exists (select 1 from {{ replaced }} as r where r.{{ replaced_key }} = kept.{{ key }})
    union all
    {% endif -%}
    select {{ cols }} from {{ batch }};
    drop table {{ target }};
    alter table {{ merging }} rename to {{ adapter.quote(target.identifier) }}
    {%- endif %}
    {%- endset -%}
    {{ return(sql) }}
{%- endmacro %}

{#- Post-hook: record what is now staged, in the model's transaction, and which exports
    this build staged (`in_last_build`: those after the watermark on an incremental night,
    all otherwise; the plan is still the build's: the state is written here). -#}
{% macro record_staged_exports(table) -%}
    {%- set plan = staging_plan(table) -%}
    create or replace table {{ staged_state_relation() }} as
    select
        now.*,
        {{ staging_signature(staging_signature_sql(table)) }} as signature,
        {% if plan.mode == 'incremental' -%}
        now.export_date > date '{{ plan.watermark }}'
        {%- else -%}
        true
        {%- endif %} as in_last_build
    from ({{ raw_export_counts(source('raw', table)) }}) as now
    order by now.export_date
{%- endmacro %}

{#- SQL condition on a staging model's rows (`column`: their source_export_date): the rows
    of the exports its last build staged (`in_last_build` of `<model>__staged`), for the
    tests `staged_unique` and `staged_relationships`.  `true` when that build staged
    every export (a first build, a rebuild, --full-refresh), and when the model keeps no
    such record (Spark, where it is a table rebuilt every night; a state written before
    the column existed). -#}
{% macro staged_rows_condition(model, column) -%}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set state = existing_relation(suffixed_relation(model, '__staged')) -%}
    {%- if state is none
        or 'in_last_build' not in (adapter.get_columns_in_relation(state) | map(attribute='name') | list) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set every = run_query('select coalesce(bool_and(in_last_build), true) from ' ~ state).rows[0][0] -%}
    {%- if every -%}
        {{ return('true') }}
    {%- endif -%}
    {{ return(column ~ ' in (select export_date from ' ~ state ~ ' where in_last_build)') }}
{%- endmacro %}

{#- SQL expression of what a model applies to every staged row besides the raw row
    itself; when it changes, the model rebuilds.  Every model drops erased customers, so
    every signature holds the erasure requests and the erased customers. -#}
{% macro staging_signature_sql(table) -%}
    {%- set fx -%}
        '{{ var("base_currency") }}' || ':' || coalesce((
            select string_agg(currency || '=' || cast(rate_to_base as varchar), ',' order by currency)
            from {{ ref('stg_fx_rates') }}), '')
    {%- endset -%}
    {%- set salt = "md5(" ~ email_hash_salt_literal() ~ ")" -%}
    {%- set erasure -%}
        coalesce((
            select count(*) || ':' || md5(string_agg(
                coalesce(customer_id, '') || '/' || coalesce(lower(trim(email)), ''), ','
                order by customer_id, email))
            from {{ source('raw', 'erasure_requests') }}), '')
        || ':' || coalesce((
            select md5(string_agg(customer_id, ',' order by customer_id))
            from {{ ref('stg_erased_customers') }}), '')
    {%- endset -%}
    {%- if table == 'orders' -%}{{ fx }} || '|' || {{ erasure }}
    {%- elif table == 'customers' -%}{{ salt }} || '|' || {{ erasure }}
    {%- elif table == 'referrals' -%}{{ fx }} || '|' || {{ salt }} || '|' || {{ erasure }}
    {%- else -%}{{ erasure }}
    {%- endif -%}
{%- endmacro %}
