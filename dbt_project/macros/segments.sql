{#- A segment's name in a run, given `centroid_name`, its name in history.segment_centroids
    for that run (NULL when it has none there): that name, or, for the prospects segment
    (not clustered, so never in the centroids), its fixed name (vars prospects_segment_*). -#}
{% macro segment_name(centroid_name, segment_id) -%}
    coalesce(
        {{ centroid_name }},
        case
            when {{ segment_id }} = '{{ var("prospects_segment_id") }}'
                then '{{ var("prospects_segment_name") }}'
        end
    )
{%- endmacro %}
