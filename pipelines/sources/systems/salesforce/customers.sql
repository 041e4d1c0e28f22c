{#- A 15-character Salesforce id in its 18-character form (the case-safe suffix: for each
    five characters, the bits of their upper-case letters index A-Z0-5); other values as
    written. -#}
{%- macro id18(x) -%}
CASE WHEN length({{ x }}) = 15 THEN {{ x }}
{%- for chunk in range(3) %} || substr('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345', 1
{%- for i in range(5) %}
    + CASE WHEN regexp_matches(substr({{ x }}, {{ chunk * 5 + i + 1 }}, 1), '[A-Z]')
           THEN {{ 2 ** i }} ELSE 0 END
{%- endfor %}, 1)
{%- endfor %} ELSE {{ x }} END
{%- endmacro -%}
-- Salesforce contacts -> contract customers: one customer per contact that is neither
-- merged nor deleted (the skip rules), its id in the 18-character form.  Signup = the day
-- of CreatedDate (UTC), or of an earlier CreatedDate of a contact merged into it (at any
-- depth).  Channel = LeadSource through the `lead_source` map (a value it does not list:
-- other), else the LeadSource of the contact's first opportunity (by CreatedDate, deleted
-- ones left out).  HasOptedOutOfEmail = true: not opted in (otherwise: not said).
WITH RECURSIVE merged AS (
    SELECT {{ id18('id') }} AS id, {{ id18('master_record_id') }} AS master_id, created_date
    FROM contacts__all
    WHERE master_record_id IS NOT NULL
),

-- every merged contact and each contact it was merged into, directly or through others
merge_chain (id, master_id, created_date, depth) AS (
    SELECT id, master_id, created_date, 1 FROM merged
    UNION ALL
    SELECT c.id, m.master_id, c.created_date, c.depth + 1
    FROM merge_chain AS c
    INNER JOIN merged AS m ON m.id = c.master_id
    WHERE c.depth < 20
),

merged_first_created AS (
    SELECT master_id, min(TRY_CAST(created_date AS DATE)) AS first_created
    FROM merge_chain
    GROUP BY 1
),

final_master AS (
    SELECT id, arg_max(master_id, depth) AS master_id FROM merge_chain GROUP BY 1
),

opportunity_sources AS (
    SELECT
        coalesce(f.master_id, {{ id18('o.contact_id') }}) AS contact_id,
        arg_min(o.lead_source, struct_pack(c := o.created_date, l := o._line_number))
            AS lead_source
    FROM opportunities__all AS o
    LEFT JOIN final_master AS f ON f.id = {{ id18('o.contact_id') }}
    WHERE o.contact_id IS NOT NULL AND o.lead_source IS NOT NULL
      AND coalesce(lower(o.is_deleted), 'false') NOT IN ('true', '1')
    GROUP BY 1
),

people AS (
    SELECT
        c.*,
        {{ id18('c.id') }} AS sf_id,
        coalesce(c.lead_source, os.lead_source) AS source
    FROM contacts AS c
    LEFT JOIN opportunity_sources AS os ON os.contact_id = {{ id18('c.id') }}
)

SELECT
    p.sf_id AS _source_id,
    p.email,
    p.first_name,
    p.last_name,
    coalesce(p.phone, p.mobile_phone) AS phone,
    p.mailing_country_code AS country,
    p.mailing_city AS city,
    CAST(year(TRY_CAST(p.birthdate AS DATE)) AS VARCHAR) AS birth_year,
    CASE
        WHEN TRY_CAST(p.created_date AS DATE) IS NULL THEN p.created_date
        ELSE CAST(least(TRY_CAST(p.created_date AS DATE), m.first_created) AS VARCHAR)
    END AS signup_date,
    CASE
        WHEN p.source IS NOT NULL THEN {{ map('lead_source', 'p.source', "'other'") }}
    END AS acquisition_channel,
    CASE WHEN lower(p.has_opted_out_of_email) IN ('true', '1') THEN 'false' END
        AS marketing_opt_in,
    p.last_modified_date AS updated_at,
    p._source_file,
    p._line_number
FROM people AS p
LEFT JOIN merged_first_created AS m ON m.master_id = p.sf_id
