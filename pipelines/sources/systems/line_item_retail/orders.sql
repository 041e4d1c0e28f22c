-- Invoice lines -> one order per InvoiceNo (docs/online-retail.md, "Mapping decisions"):
-- amount = round(sum(Quantity * UnitPrice), 2) in exact decimals, order date = the
-- invoice's first timestamp; "C" invoices (cancellations, returns) are refunded and any
-- other negative total cancelled, both with amount abs(total).  An invoice with a line
-- that does not parse, or with two CustomerIDs, cannot be one order: it is quarantined.
WITH lines AS (
    SELECT
        invoice_no,
        TRY_CAST(quantity AS DECIMAL(18, 3)) AS qty,
        TRY_CAST(unit_price AS DECIMAL(18, 4)) AS price,
        TRY_CAST(invoice_date AS TIMESTAMP) AS ts,
        -- "17850.0" -> "17850": the export wrote the id as a float
        regexp_replace(customer_id, '\.0*$', '') AS cid,
        struct_pack(f := _source_file, l := _line_number) AS line
    FROM invoice_lines
),

invoices AS (
    SELECT
        invoice_no,
        count(DISTINCT cid) AS n_customers,
        min(cid) AS cid,
        min(ts) AS order_ts,
        round(sum(qty * price), 2) AS total,
        upper(invoice_no) LIKE 'C%' AS is_cancellation,
        count(*) FILTER (WHERE ts IS NULL OR qty IS NULL OR price IS NULL) AS bad_lines,
        min(line) AS first_line
    FROM lines
    GROUP BY invoice_no
)

SELECT
    invoice_no AS order_id,
    cid AS customer_id__source_id,
    strftime(order_ts, '%Y-%m-%dT%H:%M:%S') AS order_date,
    CAST(abs(total) AS DECIMAL(18, 2)) AS amount,
    CASE
        WHEN is_cancellation THEN 'refunded'
        WHEN total < 0 THEN 'cancelled'
        ELSE 'completed'
    END AS status,
    CASE
        WHEN bad_lines > 0 THEN 'invoice line(s) with unparseable InvoiceDate, Quantity or UnitPrice'
        WHEN n_customers > 1 THEN 'invoice with more than one CustomerID'
    END AS _reject,
    first_line.f AS _source_file,
    first_line.l AS _line_number
FROM invoices
