-- HubSpot deals -> contract orders: a won deal is a completed order (the skip rule leaves
-- the others out), dated by its Close Date, for its Amount.  Its customer is the first id
-- of Associated Contact IDs (a deal of several contacts counts once, for the first); a
-- deal without them: the first contact (by file line) whose Associated Deal IDs name it.
WITH contact_deals AS (
    SELECT
        trim(deal_id) AS deal_id,
        arg_min(record_id, struct_pack(f := _source_file, l := _line_number)) AS contact_id
    FROM contacts, unnest(regexp_split_to_array(associated_deal_ids, '[;,]')) AS d (deal_id)
    WHERE associated_deal_ids IS NOT NULL AND trim(deal_id) <> ''
    GROUP BY 1
),

deals_with_contact AS (
    SELECT
        d.*,
        coalesce(
            NULLIF(trim(regexp_split_to_array(d.associated_contact_ids, '[;,]')[1]), ''),
            c.contact_id
        ) AS contact_id
    FROM deals AS d
    LEFT JOIN contact_deals AS c ON c.deal_id = d.record_id
)

SELECT
    'hubspot-deal-' || record_id AS order_id,
    contact_id AS customer_id__source_id,
    close_date AS order_date,
    'completed' AS status,
    amount,
    upper(currency) AS currency,
    last_modified AS updated_at,
    CASE
        WHEN contact_id IS NULL
            THEN 'won deal without an associated contact (Associated Contact IDs)'
    END AS _reject,
    _source_file,
    _line_number
FROM deals_with_contact
