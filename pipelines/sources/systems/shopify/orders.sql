-- Shopify orders_export.csv -> contract orders: one order per Name, from the order's first
-- row (the skip rule leaves its other line items out).  No customer id in the file: the
-- order's customer is found by its email (identity resolution).
SELECT
    name AS order_id,
    email AS customer_id__email,
    created_at AS order_date,
    CASE
        WHEN cancelled_at IS NOT NULL THEN 'cancelled'
        ELSE {{ map('order_status', 'financial_status') }}
    END AS status,
    -- the goods after discounts, before shipping and tax; a completed order's refunds are
    -- taken off (Subtotal - Refunded Amount, floored at 0: a refund of shipping or tax can
    -- exceed what is left of the goods)
    CASE
        WHEN TRY_CAST(subtotal AS DECIMAL(18, 4)) IS NULL THEN subtotal
        WHEN TRY_CAST(subtotal AS DECIMAL(18, 4)) < 0 THEN subtotal  -- bad: the checks say so
        WHEN cancelled_at IS NULL
         AND {{ map('order_status', 'financial_status') }} = 'completed'
        THEN CAST(greatest(
            TRY_CAST(subtotal AS DECIMAL(18, 4))
                - coalesce(TRY_CAST(refunded_amount AS DECIMAL(18, 4)), 0),
            0) AS VARCHAR)
        ELSE subtotal
    END AS amount,
    currency,
    discount_amount,
    CASE
        WHEN refunded_amount IS NOT NULL AND TRY_CAST(refunded_amount AS DECIMAL(18, 4)) IS NULL
        THEN 'unparseable money in Refunded Amount'
    END AS _reject,
    _source_file,
    _line_number
FROM orders
