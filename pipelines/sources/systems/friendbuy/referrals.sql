-- Friendbuy account credit export -> contract referrals.  The skip rules leave out what is
-- not a referral reward (Redemption, Manual, Credit Expiration, a Reward or Reversal naming
-- no friend).  What is left:
--
-- * the Rewards and Reversals of one advocate (Customer Email, else Customer ID) and one
--   friend (Friend Email, else the friend of the same Friend Order ID) are one referral:
--   referrer = the advocate, referee = the friend; sent_at = converted_at = the first
--   Reward's Date (the ledger knows no share date); reward_referrer_amount = the Rewards'
--   amounts minus the Reversals' (absolute values), floored at 0, in Currency, type credit;
--   status converted, or rejected when the Reversals cancel the whole reward;
-- * Reversals of a pair with no Reward in this export cancel the reward of the referral an
--   earlier export gave (same referral id; a new version of it), else are quarantined;
-- * a pair the Mention Me feed of this export also holds (the same referrer: the same
--   customer, else the same normalised email; the same friend: normalised email) is Mention
--   Me's referral: the reward completes that one instead (mention_me/referrals.sql, keep
--   the two in step);
-- * any other Credit Source is quarantined.
WITH credits AS (
    SELECT
        *,
        lower(trim(credit_source)) AS kind,
        coalesce(lower(trim(customer_email)), 'id:' || customer_id) AS advocate_key,
        coalesce(
            lower(trim(friend_email)),
            max(lower(trim(friend_email))) OVER (PARTITION BY friend_order_id),
            'order:' || friend_order_id
        ) AS friend_key,
        abs(TRY_CAST(transaction_amount AS DECIMAL(18, 4))) AS amount,
        TRY_CAST("date" AS TIMESTAMP) AS ts
    FROM account_credits
),

{{ customer_lookup_ctes }},

-- the referrals of a Mention Me feed in this export: referrer (the customer, else the
-- normalised email) and friend (normalised email), as mention_me/referrals.sql keys them
mention_me_pairs AS (
    SELECT DISTINCT
        coalesce(
            rm.customer_id, re.customer_id, lower(trim(m.referred_by_email)),
            'id:' || m.referred_by_id
        ) AS referrer_key,
        lower(trim(m.customer_email)) AS friend_key
    FROM {{ layout('mention_me/crm_feed') }} AS m
    LEFT JOIN by_merchant_id AS rm ON rm.source_id = m.referred_by_id
    LEFT JOIN by_email AS re ON re.email_hash = email_hash(m.referred_by_email)
),

pairs AS (
    SELECT
        c.advocate_key,
        c.friend_key,
        '{{ system }}:' || left(email_hash(c.advocate_key || ' > ' || c.friend_key), 24)
            AS referral_id,
        count(*) FILTER (WHERE c.kind = 'reward') AS rewards,
        coalesce(sum(c.amount) FILTER (WHERE c.kind = 'reward'), 0) AS rewarded,
        coalesce(sum(c.amount) FILTER (WHERE c.kind = 'reversal'), 0) AS reversed,
        min(c.ts) FILTER (WHERE c.kind = 'reward') AS first_reward_at,
        count(*) FILTER (WHERE c.amount IS NULL OR c.ts IS NULL) AS bad_rows,
        arg_min(c.customer_email, c._line_number) AS customer_email,
        arg_min(c.customer_id, c._line_number) AS customer_id,
        arg_min(c.friend_email, c._line_number) FILTER (WHERE c.friend_email IS NOT NULL)
            AS friend_email,
        arg_min(c.currency, c._line_number) FILTER (WHERE c.currency IS NOT NULL) AS currency,
        -- the line it stands for: its first Reward, else its first Reversal
        arg_min(
            struct_pack(f := c._source_file, l := c._line_number),
            struct_pack(r := c.kind <> 'reward', f := c._source_file, l := c._line_number)
        ) AS line
    FROM credits AS c
    WHERE c.kind IN ('reward', 'reversal')
    GROUP BY c.advocate_key, c.friend_key
),

-- the latest version an earlier export gave of a referral whose reward is reversed now
earlier AS (
    SELECT
        referral_id,
        arg_max(
            struct_pack(
                sent_at := sent_at, converted_at := converted_at, status := status,
                amount := reward_referrer_amount, currency := reward_currency
            ),
            struct_pack(d := _export_date, u := updated_at)
        ) AS v
    FROM raw.referrals
    WHERE _source_system = '{{ system }}' AND _export_date < {{ export_date }}
    GROUP BY referral_id
),

referrals AS (
    SELECT
        p.*,
        e.v AS prev,
        am.customer_id AS referrer_by_id,
        CASE
            WHEN p.rewards > 0 THEN greatest(p.rewarded - p.reversed, 0)
            ELSE greatest(coalesce(e.v.amount, 0) - p.reversed, 0)
        END AS net
    FROM pairs AS p
    LEFT JOIN earlier AS e ON e.referral_id = p.referral_id
    LEFT JOIN by_merchant_id AS am ON am.source_id = p.customer_id
    LEFT JOIN by_email AS ae ON ae.email_hash = email_hash(p.customer_email)
    WHERE NOT EXISTS (
        SELECT 1 FROM mention_me_pairs AS m
        WHERE m.referrer_key = coalesce(am.customer_id, ae.customer_id, p.advocate_key)
          AND m.friend_key = p.friend_key
    )
)

SELECT
    r.referral_id,
    r.referrer_by_id AS referrer_customer_id,
    r.customer_email AS referrer_customer_id__email,
    r.customer_id AS referrer_customer_id__source_id,
    r.friend_email AS referee_email,
    ee.customer_id AS referee_customer_id,
    CASE
        WHEN r.rewards > 0 THEN strftime(r.first_reward_at, '%Y-%m-%d %H:%M:%S')
        ELSE CAST(r.prev.sent_at AS VARCHAR)
    END AS sent_at,
    CASE
        WHEN r.net > 0 AND r.rewards > 0 THEN 'converted'
        WHEN r.net > 0 THEN r.prev.status
        ELSE 'rejected'
    END AS status,
    CASE
        WHEN r.net > 0 AND r.rewards > 0 THEN strftime(r.first_reward_at, '%Y-%m-%d %H:%M:%S')
        WHEN r.net > 0 THEN CAST(r.prev.converted_at AS VARCHAR)
    END AS converted_at,
    r.net AS reward_referrer_amount,
    coalesce(r.currency, r.prev.currency) AS reward_currency,
    'credit' AS reward_type,
    CASE
        WHEN r.bad_rows > 0
            THEN 'unparseable Date or Transaction Amount in a Reward or Reversal of this referral'
        WHEN r.rewards = 0 AND r.prev IS NULL
            THEN 'Reversal of a reward in no export (no Reward of this advocate and friend)'
    END AS _reject,
    r.line.f AS _source_file,
    r.line.l AS _line_number
FROM referrals AS r
LEFT JOIN by_email AS ee ON ee.email_hash = email_hash(r.friend_email)

UNION ALL

SELECT
    '{{ system }}:line:' || c._line_number AS referral_id,
    NULL AS referrer_customer_id,
    c.customer_email AS referrer_customer_id__email,
    c.customer_id AS referrer_customer_id__source_id,
    NULL AS referee_email,
    NULL AS referee_customer_id,
    c."date" AS sent_at,
    NULL AS status,
    NULL AS converted_at,
    NULL AS reward_referrer_amount,
    NULL AS reward_currency,
    NULL AS reward_type,
    'unknown Credit Source ' || coalesce('"' || c.credit_source || '"', '(blank)') AS _reject,
    c._source_file,
    c._line_number
FROM credits AS c
WHERE c.kind IS NULL OR c.kind NOT IN ('reward', 'reversal')
