-- Stripe customers -> contract customers: one per customer object (id cus_...), signup =
-- the day of Created (UTC).  People who paid (a payment that did not fail) without being
-- in a customers file of this export (a guest checkout, or a customer of another Stripe
-- account) are customers too: named by their Customer ID, else their email, signup = the
-- earlier of their first payment in this export and the first export that held them (the
-- identity crosswalk).  Several objects with one email are one customer (identity).
WITH listed AS (
    SELECT id, lower(trim(email)) AS em FROM customers
),

paying AS (
    SELECT
        p.customer_id,
        lower(trim(p.customer_email)) AS em,
        p.customer_email,
        TRY_CAST(p.created AS TIMESTAMP) AS ts,
        p._source_file,
        p._line_number
    FROM payments AS p
    WHERE (p.customer_id IS NOT NULL OR p.customer_email IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM listed AS l WHERE l.id = p.customer_id)
      AND NOT (p.customer_id IS NULL
               AND EXISTS (SELECT 1 FROM listed AS l WHERE l.em = lower(trim(p.customer_email))))
),

payers AS (
    SELECT
        customer_id,
        CASE WHEN customer_id IS NULL THEN em END AS guest_em,
        arg_min(customer_email, struct_pack(t := ts, f := _source_file, l := _line_number))
            AS email,
        CAST(min(ts) AS DATE) AS first_payment,
        min(struct_pack(f := _source_file, l := _line_number)) AS first_line
    FROM paying
    GROUP BY 1, 2
),

{{ first_seen_ctes }}

SELECT
    id AS _source_id,
    email,
    phone,
    created AS signup_date,
    _source_file,
    _line_number
FROM customers

UNION ALL

SELECT
    p.customer_id,
    p.email,
    NULL,
    CAST(least(p.first_payment, si.day, se.day) AS VARCHAR),
    p.first_line.f,
    p.first_line.l
FROM payers AS p
LEFT JOIN seen_by_id AS si ON si.source_id = p.customer_id
LEFT JOIN seen_by_email AS se ON se.email_hash = email_hash(p.email)
