-- Shopify customers_export.csv (either layout) -> contract customers.
-- The export has no signup date: it is the earlier of the day of the customer's first
-- order in this export's orders files (matched on the normalised email) and the date of
-- the first export that held the customer (the identity crosswalk, found by this Customer
-- ID or by the email); a customer seen for the first time without an order: this
-- export's date.
WITH people AS (
    SELECT customer_id AS source_id, email, first_name, last_name,
           coalesce(phone, address_phone) AS phone, country_code, city,
           accepts_email_marketing, _source_file, _line_number
    FROM customers
    UNION ALL
    SELECT NULL, email, first_name, last_name, phone, country_code, city,
           accepts_email_marketing, _source_file, _line_number
    FROM customers_legacy
),

first_order AS (
    SELECT lower(trim(email)) AS em,
           min(CAST(TRY_CAST(created_at AS TIMESTAMP) AS DATE)) AS day
    FROM orders
    WHERE email IS NOT NULL
    GROUP BY 1
),

{{ first_seen_ctes }}

SELECT
    p.source_id AS _source_id,
    p.email,
    p.first_name,
    p.last_name,
    p.phone,
    p.country_code AS country,
    p.city,
    p.accepts_email_marketing AS marketing_opt_in,
    CAST(coalesce(least(o.day, si.day, se.day), {{ export_date }}) AS VARCHAR) AS signup_date,
    p._source_file,
    p._line_number
FROM people AS p
LEFT JOIN first_order AS o ON o.em = lower(trim(p.email))
LEFT JOIN seen_by_id AS si ON si.source_id = p.source_id
LEFT JOIN seen_by_email AS se ON se.email_hash = email_hash(p.email)
