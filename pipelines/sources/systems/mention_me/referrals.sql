-- Mention Me CRM feed -> contract referrals.  A row whose customer was referred (the skip
-- rule leaves the others out) is one referral: referrer = the Referred By customer,
-- referee = the row's customer.
--
-- Customers: a Merchant Customer ID is the shop's own id, so it names the customer when the
-- crosswalk knows it under exactly one customer (any system; an id two customers share is
-- ignored); otherwise the normalised email links (identity).  A referrer nobody knows is
-- quarantined as an unknown customer; a referee nobody knows has no account yet
-- (referee_customer_id NULL).
--
-- Status from the dates: Qualified (or Rewarded) -> converted at that date; Signed Up ->
-- signed_up; else sent.  sent_at = Referred Date, else the earliest later date given.
-- referral_id: `mention_me:` + 24 hex of the salted hash of "referrer > referee" (normalised
-- emails, else merchant ids): no personal data, the same in every export.
--
-- Rewards: the feed has no amounts.  When the export also holds Friendbuy's account credit
-- export, the net Friendbuy reward of the same referrer (the same customer, else the same
-- normalised email) and the same friend (normalised email) is the referrer's reward, in
-- Friendbuy's Currency, type credit (docs/sources.md, "Friendbuy"; keep in step with
-- friendbuy/referrals.sql).
WITH {{ customer_lookup_ctes }},

feed AS (
    SELECT
        f.*,
        rm.customer_id AS referrer_by_id,
        coalesce(
            rm.customer_id, re.customer_id, lower(trim(f.referred_by_email)),
            'id:' || f.referred_by_id
        ) AS referrer_key,
        lower(trim(f.customer_email)) AS referee_key,
        coalesce(em.customer_id, ee.customer_id) AS referee_customer_id
    FROM crm_feed AS f
    LEFT JOIN by_merchant_id AS rm ON rm.source_id = f.referred_by_id
    LEFT JOIN by_email AS re ON re.email_hash = email_hash(f.referred_by_email)
    LEFT JOIN by_merchant_id AS em ON em.source_id = f.merchant_customer_id
    LEFT JOIN by_email AS ee ON ee.email_hash = email_hash(f.customer_email)
),

-- Friendbuy's referral rewards of this export, net of reversals, per referrer and friend
credits AS (
    SELECT
        coalesce(
            am.customer_id, ae.customer_id, lower(trim(c.customer_email)),
            'id:' || c.customer_id
        ) AS advocate_key,
        coalesce(
            lower(trim(c.friend_email)),
            max(lower(trim(c.friend_email))) OVER (PARTITION BY c.friend_order_id)
        ) AS friend_key,
        lower(c.credit_source) AS kind,
        abs(TRY_CAST(c.transaction_amount AS DECIMAL(18, 4))) AS amount,
        c.currency
    FROM {{ layout('friendbuy/account_credits') }} AS c
    LEFT JOIN by_merchant_id AS am ON am.source_id = c.customer_id
    LEFT JOIN by_email AS ae ON ae.email_hash = email_hash(c.customer_email)
),

rewards AS (
    SELECT
        advocate_key,
        friend_key,
        greatest(
            coalesce(sum(amount) FILTER (WHERE kind = 'reward'), 0)
            - coalesce(sum(amount) FILTER (WHERE kind = 'reversal'), 0),
            0
        ) AS net_reward,
        min(currency) AS currency
    FROM credits
    WHERE kind IN ('reward', 'reversal')
    GROUP BY advocate_key, friend_key
    HAVING count(*) FILTER (WHERE kind = 'reward') > 0
)

SELECT
    '{{ system }}:' || left(email_hash(
        coalesce(lower(trim(f.referred_by_email)), 'id:' || f.referred_by_id) || ' > '
        || coalesce(f.referee_key, 'id:' || f.merchant_customer_id)
    ), 24) AS referral_id,
    f.referrer_by_id AS referrer_customer_id,
    f.referred_by_email AS referrer_customer_id__email,
    f.referred_by_id AS referrer_customer_id__source_id,
    f.customer_email AS referee_email,
    f.referee_customer_id,
    coalesce(f.referred_at, f.signed_up_at, f.qualified_at, f.rewarded_at) AS sent_at,
    CASE
        WHEN f.share_method IS NOT NULL
            THEN {{ map('share_channel', 'f.share_method', "'other'") }}
    END AS channel,
    CASE
        WHEN coalesce(f.qualified_at, f.rewarded_at) IS NOT NULL THEN 'converted'
        WHEN f.signed_up_at IS NOT NULL THEN 'signed_up'
        ELSE 'sent'
    END AS status,
    coalesce(f.qualified_at, f.rewarded_at) AS converted_at,
    r.net_reward AS reward_referrer_amount,
    CASE WHEN r.net_reward IS NOT NULL THEN r.currency END AS reward_currency,
    CASE WHEN r.net_reward IS NOT NULL THEN 'credit' END AS reward_type,
    f._source_file,
    f._line_number
FROM feed AS f
LEFT JOIN rewards AS r ON r.advocate_key = f.referrer_key AND r.friend_key = f.referee_key
