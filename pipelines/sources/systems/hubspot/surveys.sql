-- HubSpot contacts -> contract surveys: a contact's last NPS answer is one response
-- (response id hubspot-nps-<Record ID>-<answer time>, so a later answer is a new response
-- and the earlier one stays).  The score is `Latest NPS survey rating` when exported, else
-- `Last NPS survey rating` when it holds a whole number; a rating that is only a class
-- (Promoter, Passive, Detractor) has no score and gives no response.
WITH rated AS (
    SELECT
        record_id,
        nps_date,
        coalesce(
            NULLIF(regexp_extract(nps_rating_number, '^([0-9]+)(\.0+)?$', 1), ''),
            NULLIF(regexp_extract(nps_rating, '^([0-9]+)(\.0+)?$', 1), '')
        ) AS score,
        _source_file,
        _line_number
    FROM contacts
)

SELECT
    'hubspot-nps-' || record_id || '-'
    || coalesce(strftime(TRY_CAST(nps_date AS TIMESTAMP), '%Y%m%dT%H%M%S'), 'undated')
        AS response_id,
    record_id AS customer_id__source_id,
    nps_date AS responded_at,
    score AS nps,
    _source_file,
    _line_number
FROM rated
WHERE score IS NOT NULL
