-- Invoice lines -> one customer per CustomerID: the first invoice day stands in for the
-- signup date (refunds included); the country is that of the customer's latest line
-- (ties: latest invoice, then name), as an ISO code where the name has one.
WITH lines AS (
    SELECT
        invoice_no,
        TRY_CAST(invoice_date AS TIMESTAMP) AS ts,
        regexp_replace(customer_id, '\.0*$', '') AS cid,
        country,
        struct_pack(f := _source_file, l := _line_number) AS line
    FROM invoice_lines
),

per_customer AS (
    SELECT
        cid,
        CAST(min(ts) AS DATE) AS signup_date,
        arg_max(country, struct_pack(t := ts, i := invoice_no, c := coalesce(country, '')))
            AS country_name,
        min(line) AS first_line
    FROM lines
    WHERE cid IS NOT NULL
    GROUP BY cid
)

SELECT
    cid AS _source_id,
    CAST(signup_date AS VARCHAR) AS signup_date,
    {{ map('country_code', 'country_name') }} AS country,
    first_line.f AS _source_file,
    first_line.l AS _line_number
FROM per_customer
