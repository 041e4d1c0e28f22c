-- Latest version of each referral, rewards defaulted to 0 and converted to the base
-- currency (reward_currency NULL -> base currency), referee_email hashed.
-- Erasure: referrals sent BY an erased customer are removed; for referrals whose REFEREE
-- is erased (by customer_id or by email) the referral stays (it is the referrer's
-- activity) but referee_customer_id and referee_email_hash are set to NULL and
-- is_referee_erased = true, so it counts as sent, never as converted.
-- Incremental on DuckDB: a night stages only the exports not staged yet, and rebuilds from
-- all of raw when what was staged changed (macros/incremental_staging.sql says when; on
-- Spark a table rebuilt every night, macro staging_model_config says why).
{{ config(**staging_model_config('referrals', unique_key='referral_id')) }}

with latest as (
    {{ latest_version(staging_source('referrals'), ['referral_id']) }}
),

erased as (
    select customer_id from {{ ref('stg_erased_customers') }}
),

erased_emails as (
    select distinct {{ hash_email('email') }} as email_hash
    from {{ source('raw', 'erasure_requests') }}
    where email is not null
),

referrals as (
    select
        latest.*,
        {{ hash_email('latest.referee_email') }} as raw_referee_email_hash,
        coalesce(latest.reward_currency, '{{ var("base_currency") }}') as reward_currency_filled
    from latest
    left join erased on latest.referrer_customer_id = erased.customer_id
    where erased.customer_id is null
),

flagged as (
    select
        referrals.*,
        (referee_erased.customer_id is not null or erased_emails.email_hash is not null)
            as is_referee_erased
    from referrals
    left join erased as referee_erased on referrals.referee_customer_id = referee_erased.customer_id
    left join erased_emails on referrals.raw_referee_email_hash = erased_emails.email_hash
),

converted as (
    select
        flagged.*,
        {{ fail_when_null(
            'fx.rate_to_base',
            "'missing fx rate for currency ' || flagged.reward_currency_filled"
            ~ " || ' (referral ' || flagged.referral_id || '): add it to fx_rates'"
        ) }} as fx_rate
    from flagged
    left join {{ ref('stg_fx_rates') }} as fx on flagged.reward_currency_filled = fx.currency
)

select
    referral_id,
    referrer_customer_id,
    case when is_referee_erased then null else referee_customer_id end as referee_customer_id,
    case when is_referee_erased then null else raw_referee_email_hash end as referee_email_hash,
    is_referee_erased,
    sent_at,
    channel,
    status,
    converted_at,
    reward_currency_filled as reward_currency,
    fx_rate,
    cast(coalesce(reward_referrer_amount, 0) as {{ money_type() }}) as reward_referrer_amount,
    cast(coalesce(reward_referee_amount, 0) as {{ money_type() }}) as reward_referee_amount,
    {{ to_base_currency('coalesce(reward_referrer_amount, 0)', 'fx_rate') }}
        as reward_referrer_amount_base,
    {{ to_base_currency('coalesce(reward_referee_amount, 0)', 'fx_rate') }}
        as reward_referee_amount_base,
    reward_type,
    updated_at,
    _export_date as source_export_date
from converted
order by referral_id
