{#- A 15-character Salesforce id in its 18-character form (as in customers.sql). -#}
{%- macro id18(x) -%}
CASE WHEN length({{ x }}) = 15 THEN {{ x }}
{%- for chunk in range(3) %} || substr('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345', 1
{%- for i in range(5) %}
    + CASE WHEN regexp_matches(substr({{ x }}, {{ chunk * 5 + i + 1 }}, 1), '[A-Z]')
           THEN {{ 2 ** i }} ELSE 0 END
{%- endfor %}, 1)
{%- endfor %} ELSE {{ x }} END
{%- endmacro -%}
-- Salesforce opportunities -> contract orders: a won opportunity (the skip rules leave out
-- the others and the deleted ones) is a completed order dated by its CloseDate, for its
-- Amount in its CurrencyIsoCode (none: the base currency).  Its customer is its ContactId,
-- or the contact that one was merged into (MasterRecordId, at any depth); without a
-- ContactId, the first contact of its AccountId (by CreatedDate, then Id).
WITH RECURSIVE merged AS (
    SELECT {{ id18('id') }} AS id, {{ id18('master_record_id') }} AS master_id
    FROM contacts__all
    WHERE master_record_id IS NOT NULL
),

merge_chain (id, master_id, depth) AS (
    SELECT id, master_id, 1 FROM merged
    UNION ALL
    SELECT c.id, m.master_id, c.depth + 1
    FROM merge_chain AS c
    INNER JOIN merged AS m ON m.id = c.master_id
    WHERE c.depth < 20
),

final_master AS (
    SELECT id, arg_max(master_id, depth) AS master_id FROM merge_chain GROUP BY 1
),

account_contact AS (
    SELECT
        {{ id18('account_id') }} AS account_id,
        arg_min({{ id18('id') }}, struct_pack(c := created_date, i := {{ id18('id') }}))
            AS contact_id
    FROM contacts
    WHERE account_id IS NOT NULL
    GROUP BY 1
),

won AS (
    SELECT
        o.*,
        coalesce(
            f.master_id, {{ id18('o.contact_id') }}, a.contact_id
        ) AS customer_source_id
    FROM opportunities AS o
    LEFT JOIN final_master AS f ON f.id = {{ id18('o.contact_id') }}
    LEFT JOIN account_contact AS a ON a.account_id = {{ id18('o.account_id') }}
)

SELECT
    {{ id18('id') }} AS order_id,
    customer_source_id AS customer_id__source_id,
    close_date AS order_date,
    'completed' AS status,
    amount,
    upper(currency_iso_code) AS currency,
    last_modified_date AS updated_at,
    CASE
        WHEN customer_source_id IS NULL
            THEN 'won opportunity without a ContactId or a contact of its AccountId'
    END AS _reject,
    _source_file,
    _line_number
FROM won
