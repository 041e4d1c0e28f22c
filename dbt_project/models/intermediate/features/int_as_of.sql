-- The run's as-of date, the ONE place it is defined: var as_of_date when set, else the
-- newest export date in raw.exports. Every window, age and cut-off reads it from here.
{% if var('as_of_date', none) %}
    select cast('{{ var("as_of_date") }}' as date) as as_of_date
{% else %}
    select max(export_date) as as_of_date
    from {{ source('raw', 'exports') }}
{% endif %}
