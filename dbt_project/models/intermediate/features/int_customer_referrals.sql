-- Referrals domain of customer_features: one row per customer who sent a counted referral
-- or is the referee of an attributed conversion (int_referral_attribution, which holds
-- the referrals sent on or before as_of). Definitions: int_customer_referrals.yml.
with

attribution as (
    select * from {{ ref('int_referral_attribution') }}
),

sent as (
    select
        referrer_customer_id as customer_id,
        count(*) as referrals_sent,
        cast(
            sum(case when is_attributed_conversion then 1 else 0 end) as {{ dbt.type_bigint() }}
        ) as referrals_converted,
        cast(
            sum(
                case
                    when cast(sent_at as date) > {{ add_days('as_of_date', -365) }} then 1
                    else 0
                end
            ) as {{ dbt.type_bigint() }}
        ) as referrals_sent_365d
    from attribution
    where is_counted
    group by referrer_customer_id
),

-- a referee is attributed once (int_referral_attribution), so one row per referee
referred as (
    select
        referee_customer_id as customer_id,
        referrer_customer_id as referred_by_customer_id
    from attribution
    where is_attributed_conversion
)

select
    coalesce(sent.customer_id, referred.customer_id) as customer_id,
    coalesce(sent.referrals_sent, 0) as referrals_sent,
    coalesce(sent.referrals_converted, 0) as referrals_converted,
    coalesce(sent.referrals_sent_365d, 0) as referrals_sent_365d,
    referred.referred_by_customer_id
from sent
full outer join referred on sent.customer_id = referred.customer_id
order by customer_id
