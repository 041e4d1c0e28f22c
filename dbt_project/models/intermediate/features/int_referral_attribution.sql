-- One row per referral sent on or before as_of, with the attribution flags of metrics.md
-- "Referral attribution":
-- 1. self-referral (referee_customer_id = referrer, or referee_email_hash = the referrer's
--    email_hash) is flagged first and excluded from every other rule;
-- 2. converted = status 'converted', referee_customer_id set, converted_at on or before as_of;
-- 3. a referee is attributed once, to its earliest converted referral (converted_at, then
--    referral_id); later ones are duplicate conversions;
-- 4. counted = not self-referral and not duplicate conversion (any status);
-- 5. referred revenue of an attributed conversion = completed orders of the referee with
--    converted_at::date <= order_day < converted_at::date + attribution_window_days and
--    order_day <= as_of; reward_cost = both rewards (base currency). Both 0 otherwise.
with as_of as (
    select as_of_date from {{ ref('int_as_of') }}
),

referrals as (
    select
        referrals.*,
        as_of.as_of_date
    from {{ ref('stg_referrals') }} as referrals
    cross join as_of
    where cast(referrals.sent_at as date) <= as_of.as_of_date
),

flagged as (
    select
        referrals.*,
        coalesce(
            referrals.referee_customer_id = referrals.referrer_customer_id
            or referrals.referee_email_hash = referrers.email_hash,
            false
        ) as is_self_referral,
        coalesce(
            referrals.status = 'converted'
            and referrals.referee_customer_id is not null
            and referrals.converted_at is not null
            and cast(referrals.converted_at as date) <= referrals.as_of_date,
            false
        ) as is_converted
    from referrals
    left join {{ ref('stg_customers') }} as referrers
        on referrals.referrer_customer_id = referrers.customer_id
),

conversion_rank as (
    select
        referral_id,
        row_number() over (
            partition by referee_customer_id
            order by converted_at, referral_id
        ) as conversion_rank
    from flagged
    where is_converted and not is_self_referral
),

attributed as (
    select
        flagged.*,
        coalesce(conversion_rank.conversion_rank > 1, false) as is_duplicate_conversion,
        coalesce(conversion_rank.conversion_rank = 1, false) as is_attributed_conversion
    from flagged
    left join conversion_rank on flagged.referral_id = conversion_rank.referral_id
),

referred_orders as (
    select
        attributed.referral_id,
        count(*) as referred_orders,
        sum(orders.amount_base) as referred_revenue
    from attributed
    inner join {{ ref('stg_orders') }} as orders
        on
            orders.customer_id = attributed.referee_customer_id
            and orders.status = 'completed'
            and orders.order_day >= cast(attributed.converted_at as date)
            and orders.order_day < {{ add_days(
                'cast(attributed.converted_at as date)', var('attribution_window_days')
            ) }}
            and orders.order_day <= attributed.as_of_date
    where attributed.is_attributed_conversion
    group by attributed.referral_id
)

select
    attributed.referral_id,
    attributed.referrer_customer_id,
    attributed.referee_customer_id,
    attributed.sent_at,
    cast({{ dbt.date_trunc('month', 'attributed.sent_at') }} as date) as sent_month,
    attributed.converted_at,
    attributed.status,
    attributed.channel,
    attributed.is_referee_erased,
    attributed.is_converted,
    attributed.is_self_referral,
    attributed.is_duplicate_conversion,
    (not attributed.is_self_referral and not attributed.is_duplicate_conversion) as is_counted,
    attributed.is_attributed_conversion,
    case
        when attributed.is_attributed_conversion
            then {{ to_money(
                'attributed.reward_referrer_amount_base + attributed.reward_referee_amount_base'
            ) }}
        else cast(0 as {{ money_type() }})
    end as reward_cost,
    coalesce(referred_orders.referred_orders, 0) as referred_orders,
    {{ to_money('coalesce(referred_orders.referred_revenue, 0)') }} as referred_revenue,
    attributed.as_of_date
from attributed
left join referred_orders on attributed.referral_id = referred_orders.referral_id
order by attributed.referral_id
