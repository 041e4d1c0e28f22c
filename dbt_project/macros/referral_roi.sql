{#- Rules shared by referral_roi_by_segment and referral_roi_by_segment_monthly, written
    once. -#}

{#- program_cost of a segment row over a period: the 'all' row carries the period's whole
    cost; a segment gets cost * its referrals_sent / all referrals_sent of the period
    (rounded to 4 decimals), 0 when nobody sent a referral in the period. -#}
{% macro allocated_program_cost(segment_id, period_cost, referrals_sent, all_referrals_sent) -%}
    case
        when {{ segment_id }} = 'all' then {{ to_money('coalesce(' ~ period_cost ~ ', 0)') }}
        when coalesce({{ all_referrals_sent }}, 0) = 0 then cast(0 as {{ money_type() }})
        else {{ double_to_money(
            'cast(coalesce(' ~ period_cost ~ ', 0) as ' ~ type_double() ~ ') * coalesce('
            ~ referrals_sent ~ ', 0) / ' ~ all_referrals_sent
        ) }}
    end
{%- endmacro %}

{#- The referral counts and amounts of a group of int_referrals_by_segment rows. -#}
{% macro referral_stats() -%}
    count(distinct referrer_customer_id) as referrers,
    count(*) as referrals_sent,
    cast(
        sum(case when is_attributed_conversion then 1 else 0 end) as {{ dbt.type_bigint() }}
    ) as referrals_converted,
    count(distinct case when is_attributed_conversion then referee_customer_id end)
        as referred_customers,
    sum(referred_revenue) as referred_revenue,
    sum(reward_cost) as reward_cost
{%- endmacro %}

{#- total_cost, roi and referral_cac of a row with referred_revenue, reward_cost,
    program_cost and referred_customers (columns of `relation`). -#}
{% macro referral_roi_columns(relation) -%}
    {%- set total_cost = relation ~ '.reward_cost + ' ~ relation ~ '.program_cost' -%}
    {{ to_money(total_cost) }} as total_cost,
    {{ safe_ratio(
        relation ~ '.referred_revenue * ' ~ var('gross_margin') ~ ' - (' ~ total_cost ~ ')',
        total_cost
    ) }} as roi,
    {{ safe_money_ratio(total_cost, relation ~ '.referred_customers') }} as referral_cac
{%- endmacro %}
