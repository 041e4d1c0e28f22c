-- Delighted responses -> contract surveys: one answer per response (the skip rule leaves
-- out survey types other than NPS and CSAT).  The score is the NPS (0-10), or the CSAT
-- (1-5) of a CSAT survey; a score out of range is quarantined by the checks.  The
-- respondent is found by the normalised email (identity); a `person` that is not an email
-- (a bare Delighted person id) cannot be linked and is quarantined.
SELECT
    '{{ system }}:' || response_id AS response_id,
    email AS customer_id__email,
    created_at AS responded_at,
    CASE WHEN coalesce(lower(survey_type), 'nps') = 'nps' THEN score END AS nps,
    CASE WHEN lower(survey_type) = 'csat' THEN score END AS csat,
    CASE
        WHEN email IS NULL OR email NOT LIKE '%@%'
            THEN 'no respondent email (a Delighted person id alone cannot be linked)'
    END AS _reject,
    _source_file,
    _line_number
FROM responses
