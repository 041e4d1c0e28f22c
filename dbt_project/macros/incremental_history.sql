{#- Incremental order history (int_customer_order_history): one row per customer of what
    does not depend on the as-of date beyond its cut-off (order_date::date <= as_of).

    Recomputing every customer's history from all orders was most of a night's model time
    (1M customers: ~18 s of 9M orders regrouped), while a night's export changes ~0.5% of
    records.  A customer's row depends only on that customer's orders up to as_of, so a
    night recomputes the rows of the customers whose orders could have changed, from all
    of their orders, and keeps the others ("affected", table `<model>__affected`, written
    by the pre-hook):
    - the customers of the stg_orders rows staged after the model's last build
      (source_export_date > the newest export staged then: the watermark);
    - every customer a raw version of those orders names (an order moved to another
      customer leaves its previous customer affected);
    - the customers of an order whose day is in (the last build's as_of, as_of]: an order
      dated in the future when it was delivered, now included.
    That equals a rebuild only while what the last build read of stg_orders still holds,
    so the post-hook records it (`<model>__built`: stg_orders__staged as it was, the as-of
    date and the model's SQL checksum) and the model rebuilds from all of stg_orders,
    logging why (`order_history_plan`), when:
    - its SQL changed, or the as-of date went back;
    - stg_orders' signature changed (its SQL, base currency, fx rates, erasure requests:
      stg_orders was rebuilt, and erased customers must disappear here too);
    - an export staged at the last build was re-ingested, or an export not newer than the
      watermark arrived late (stg_orders rebuilt from all of raw);
    - raw versions of exports staged before were dropped (retention) while more than one
      export arrived since: the previous version of a changed order may be gone from raw.
      Retention never drops what only the newest export supersedes, so a night with one
      new export stays incremental.
    A night with many affected customers (more than `replace_keys_small_batch`, default
    0.1, of the rows) writes a new table instead of a large DELETE, as `replace_keys`
    does.  `dbt build --full-refresh` rebuilds as usual.  On Spark a plain table rebuilt
    every night, as the staging models (`spark__staging_model_config` says why). -#}

{% macro order_history_model_config() -%}
    {{ return(adapter.dispatch('order_history_model_config', 'referral_segments')()) }}
{%- endmacro %}

{% macro default__order_history_model_config() -%}
    {{ return({
        'materialized': 'incremental',
        'unique_key': 'customer_id',
        'incremental_strategy': 'replace_affected',
        'on_schema_change': 'sync_all_columns',
        'pre_hook': "{{ record_affected_customers() }}",
        'post_hook': "{{ record_order_history_build() }}",
    }) }}
{%- endmacro %}

{% macro spark__order_history_model_config() -%}
    {{ return({'materialized': 'table'}) }}
{%- endmacro %}

{#- A relation named after another with a suffix: the model's `__built` (its state) and
    `__affected`, stg_orders' `__staged`. -#}
{% macro suffixed_relation(relation, suffix) -%}
    {{ return(api.Relation.create(
        database=relation.database, schema=relation.schema,
        identifier=relation.identifier ~ suffix)) }}
{%- endmacro %}

{#- The relation as the warehouse has it, or none when it does not exist. -#}
{% macro existing_relation(relation) -%}
    {{ return(adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier)) }}
{%- endmacro %}

{#- {'mode': 'full' | 'rebuild' | 'incremental', 'reason': ..., 'watermark': date,
    'built_as_of': date}.  'full': not an incremental run (first build, --full-refresh,
    unit tests). -#}
{% macro order_history_plan() -%}
    {%- if not execute or not is_incremental() -%}
        {{ return({'mode': 'full', 'reason': none}) }}
    {%- endif -%}
    {%- set built = existing_relation(suffixed_relation(this, '__built')) -%}
    {%- set staged = existing_relation(suffixed_relation(ref('stg_orders'), '__staged')) -%}
    {%- if built is none -%}
        {{ return({'mode': 'rebuild', 'reason': 'no record of its last build'}) }}
    {%- elif staged is none -%}
        {{ return({'mode': 'rebuild', 'reason': 'stg_orders has no record of what it staged'}) }}
    {%- endif -%}
    {%- set query -%}
        with built as (select * from {{ built }}),
        staged as (select * from {{ staged }}),
        as_of as (select max(as_of_date) as d from {{ ref('int_as_of') }}),
        newest as (select max(export_date) as d from built),
        last_as_of as (select min(as_of_date) as d from built)
        select
            case
                when (select count(*) from built) = 0
                    then 'no record of its last build'
                when (select min(model_checksum) from built) <> '{{ model.checksum.checksum }}'
                    then 'its SQL changed'
                when (select d from as_of) is null
                    then 'no as-of date'
                when (select d from as_of) < (select d from last_as_of)
                    then 'the as-of date went back from ' || cast((select d from last_as_of) as varchar)
                        || ' to ' || cast((select d from as_of) as varchar)
                when exists (
                    select 1 from staged
                    where staged.signature is distinct from (select min(signature) from built))
                    then 'stg_orders was rebuilt: its SQL or what it applies to every row changed (base currency, fx rates or erasure requests)'
                {{ export_change_arms(
                    'built', 'staged',
                    reingested='an export staged at its last build was re-ingested',
                    late='an export not newer than the last one it read arrived late') }}
                when exists (
                    select 1 from built
                    inner join staged on built.export_date = staged.export_date
                    where staged.raw_rows < built.raw_rows)
                    and (select count(*) from staged where export_date > (select d from newest)) > 1
                    then 'raw versions were dropped while more than one export arrived'
            end as reason,
            cast((select d from newest) as varchar) as watermark,
            cast((select d from last_as_of) as varchar) as built_as_of
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[0] is not none -%}
        {{ return({'mode': 'rebuild', 'reason': row[0]}) }}
    {%- endif -%}
    {{ return({'mode': 'incremental', 'reason': none, 'watermark': row[1], 'built_as_of': row[2]}) }}
{%- endmacro %}

{#- A condition of the model's WHERE clause: `<customer_id> in (the affected customers)`
    on an incremental night, `true` on a build from all of stg_orders; logs which. -#}
{% macro order_history_scope(customer_id) -%}
    {%- set plan = order_history_plan() -%}
    {%- if plan.mode == 'incremental' -%}
        {{ log(this.identifier ~ ': incremental: the customers of the orders staged after '
            ~ plan.watermark ~ ' or dated after ' ~ plan.built_as_of, info=true) }}
        {{ customer_id }} in (
            select affected.customer_id from {{ suffixed_relation(this, '__affected') }} as affected
        )
    {%- else -%}
        {%- if plan.mode == 'rebuild' -%}
            {{ log(this.identifier ~ ': rebuilt from all of stg_orders: ' ~ plan.reason, info=true) }}
        {%- endif -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook: the customers tonight recomputes (module docstring), or no table when the
    model is built from all of stg_orders. -#}
{% macro record_affected_customers() -%}
    {%- set plan = order_history_plan() -%}
    {%- set affected = suffixed_relation(this, '__affected') -%}
    {%- if plan.mode == 'incremental' -%}
        create or replace table {{ affected }} as
        with changed as (
            select order_id, customer_id
            from {{ ref('stg_orders') }}
            where source_export_date > date '{{ plan.watermark }}'
        ),
        as_of as (select as_of_date from {{ ref('int_as_of') }}),
        customers as (
            select customer_id from changed
            union all
            select raw_orders.customer_id
            from {{ source('raw', 'orders') }} as raw_orders
            where raw_orders.order_id in (select changed.order_id from changed)
            union all
            select orders.customer_id
            from {{ ref('stg_orders') }} as orders
            where
                orders.order_day > date '{{ plan.built_as_of }}'
                and orders.order_day <= (select as_of.as_of_date from as_of)
        )
        select distinct customer_id from customers where customer_id is not null
    {%- else -%}
        drop table if exists {{ affected }}
    {%- endif -%}
{%- endmacro %}

{#- Incremental strategy `replace_affected`: the rows of the affected customers are
    deleted and tonight's batch (their rows recomputed; a customer left without an order
    has none) inserted.  On a rebuild, or when the affected customers are more than
    `replace_keys_small_batch` of the rows, a new table is written instead and swapped
    in (why: `get_incremental_replace_keys_sql`). -#}
{% macro get_incremental_replace_affected_sql(arg_dict) -%}
    {{ return(replace_rows_sql(
        arg_dict, order_history_plan().mode == 'rebuild', suffixed_relation(this, '__affected'),
        'customer_id', counted='customers recomputed')) }}
{%- endmacro %}

{#- Post-hook: record what this build read (stg_orders__staged as it is now, the as-of
    date, the model's SQL checksum), in the model's transaction.  stg_orders' post-hook
    wrote `stg_orders__staged` earlier in this run (dbt's relation cache does not know it
    yet on a first night, so it is not looked up). -#}
{% macro record_order_history_build() -%}
    create or replace table {{ suffixed_relation(this, '__built') }} as
    select
        staged.export_date,
        staged.files,
        staged.raw_rows,
        staged.signature,
        as_of.as_of_date,
        '{{ model.checksum.checksum }}' as model_checksum
    from {{ suffixed_relation(ref('stg_orders'), '__staged') }} as staged
    cross join {{ ref('int_as_of') }} as as_of
    order by staged.export_date
{%- endmacro %}
