{#- An amount as Stripe wrote it, in dot-decimal form: a file whose amounts end in a
    decimal comma (12,50) is read with the comma as the decimal mark and dots as thousands
    separators, any other with the dot as the mark and commas as thousands separators.  A
    value of neither shape is kept as written, for the checks to quarantine. -#}
{%- macro money(x) -%}
CASE
    WHEN comma_file
     AND regexp_full_match(replace({{ x }}, ' ', ''), '[-+]?[0-9]{1,3}(\.?[0-9]{3})*(,[0-9]+)?')
        THEN replace(replace(replace({{ x }}, ' ', ''), '.', ''), ',', '.')
    WHEN NOT comma_file
     AND regexp_full_match(replace({{ x }}, ' ', ''), '[-+]?[0-9]{1,3}(,?[0-9]{3})*(\.[0-9]+)?')
        THEN replace(replace({{ x }}, ' ', ''), ',', '')
    ELSE {{ x }}
END
{%- endmacro -%}
-- Stripe payments -> contract orders: one order per payment that did not fail (the skip
-- rule leaves failed and blocked ones out).  Status: Refunded, or a refund of the whole
-- amount -> refunded (amount: the payment's); not captured -> pending; otherwise the
-- `payment_status` map, and a paid payment's amount is Amount - Amount Refunded (a partial
-- refund reduces it, floored at 0).  Amount and currency are what the customer paid
-- (Amount, Currency); the Converted columns are not used.  The customer is the Customer ID,
-- else the Customer Email (a guest payment).
WITH located AS (
    SELECT
        p.*,
        bool_or(
            regexp_full_match(replace(coalesce(p.amount, ''), ' ', ''), '[-+]?[0-9.]*,[0-9]{1,2}')
            OR regexp_full_match(
                replace(coalesce(p.amount_refunded, ''), ' ', ''), '[-+]?[0-9.]*,[0-9]{1,2}'
            )
        ) OVER (PARTITION BY p._source_file) AS comma_file
    FROM payments__all AS p
),

payment AS (
    SELECT
        l.*,
        {{ money('l.amount') }} AS amount_text,
        {{ money('l.amount_refunded') }} AS refunded_text
    FROM located AS l
    WHERE l._skip IS NULL
),

valued AS (
    SELECT
        *,
        TRY_CAST(amount_text AS DECIMAL(18, 4)) AS gross,
        coalesce(TRY_CAST(refunded_text AS DECIMAL(18, 4)), 0) AS refunded,
        CASE
            WHEN lower(status) = 'refunded' THEN 'refunded'
            WHEN TRY_CAST(amount_text AS DECIMAL(18, 4)) > 0
             AND TRY_CAST(refunded_text AS DECIMAL(18, 4))
                 >= TRY_CAST(amount_text AS DECIMAL(18, 4)) THEN 'refunded'
            -- an authorisation not captured (yet) moved no money
            WHEN lower(captured) = 'false'
             AND {{ map('payment_status', 'status') }} = 'completed' THEN 'pending'
            ELSE {{ map('payment_status', 'status') }}
        END AS order_status
    FROM payment
)

SELECT
    id AS order_id,
    customer_id AS customer_id__source_id,
    customer_email AS customer_id__email,
    created AS order_date,
    order_status AS status,
    CASE
        WHEN gross IS NULL OR gross < 0 THEN amount_text  -- bad: the checks say so
        WHEN order_status = 'completed' THEN CAST(greatest(gross - refunded, 0) AS VARCHAR)
        ELSE amount_text
    END AS amount,
    upper(currency) AS currency,
    CASE
        WHEN refunded_text IS NOT NULL AND TRY_CAST(refunded_text AS DECIMAL(18, 4)) IS NULL
            THEN 'unparseable money in Amount Refunded'
    END AS _reject,
    _source_file,
    _line_number
FROM valued
