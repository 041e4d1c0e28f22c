-- One row per customer with >= 1 counted referral (self-referrals and duplicate
-- conversions excluded), ranked, with a reward tier by attributed converted referrals
-- (vars referrer_tier_*_min). marketing_opt_in flags who may be contacted.
-- depends_on: {{ ref('int_referrals_by_segment') }}
-- (its tests stop the build when a referrer has no segment)
with assignments as (
    select * from {{ ref('int_customers_by_segment') }}
    where not is_all_row
),

referrers as (
    select
        referrer_customer_id as customer_id,
        count(*) as referrals_sent,
        cast(
            sum(case when is_attributed_conversion then 1 else 0 end) as {{ dbt.type_bigint() }}
        ) as referrals_converted,
        sum(referred_revenue) as referred_revenue,
        sum(reward_cost) as reward_cost,
        max(sent_at) as last_referral_sent_at
    from {{ ref('int_referral_attribution') }}
    where is_counted
    group by referrer_customer_id
),

ranked as (
    select
        row_number() over (
            order by
                referrers.referrals_converted desc,
                referrers.referred_revenue desc,
                referrers.referrals_sent desc,
                referrers.customer_id asc
        ) as referrer_rank,
        referrers.*
    from referrers
)

select
    ranked.referrer_rank,
    ranked.customer_id,
    assignments.segment_id,
    assignments.segment_name,
    ranked.referrals_sent,
    ranked.referrals_converted,
    {{ safe_ratio('ranked.referrals_converted', 'ranked.referrals_sent') }}
        as referral_conversion_rate,
    {{ to_money('ranked.referred_revenue') }} as referred_revenue,
    {{ to_money('ranked.reward_cost') }} as reward_cost,
    case
        when ranked.referrals_converted >= {{ var('referrer_tier_platinum_min') }} then 'platinum'
        when ranked.referrals_converted >= {{ var('referrer_tier_gold_min') }} then 'gold'
        when ranked.referrals_converted >= {{ var('referrer_tier_silver_min') }} then 'silver'
        when ranked.referrals_converted >= {{ var('referrer_tier_bronze_min') }} then 'bronze'
        else 'none'
    end as reward_tier,
    ranked.last_referral_sent_at,
    features.marketing_opt_in,
    features.advocate_type,
    features.nps_class,
    as_of.as_of_date
from ranked
left join assignments on ranked.customer_id = assignments.customer_id
left join {{ ref('customer_features') }} as features on ranked.customer_id = features.customer_id
cross join {{ ref('int_as_of') }} as as_of
order by ranked.referrer_rank
