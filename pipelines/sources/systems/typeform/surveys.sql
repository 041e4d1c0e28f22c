-- Typeform responses -> contract surveys: one answer per submitted response (the skip
-- rules leave out partial responses and those that did not answer the NPS question).
--
-- The NPS question is a column whose header is the question's text, so it is not a
-- declared column: its answer is read from the row's undeclared columns (`_extra`).  It is
-- the column named in manifest.json (options.typeform.nps_question, matched ignoring case
-- and surrounding blanks), else the first column whose header contains "recommend" (any
-- case).  The skip rule in system.yaml finds it the same way (keep the two in step).  A
-- file where neither finds a column is quarantined row by row with the reason, so the
-- export is refused with it.  The respondent is the hidden field `email`.
WITH answers AS (
    SELECT
        *,
        CASE
            WHEN {{ option('nps_question') }} IS NOT NULL
                THEN list_filter(
                    json_keys(_extra),
                    lambda k: lower(trim(k)) = lower(trim({{ option('nps_question') }}))
                )[1]
            ELSE list_filter(json_keys(_extra), lambda k: contains(lower(k), 'recommend'))[1]
        END AS nps_header
    FROM responses
)

SELECT
    '{{ system }}:' || response_id AS response_id,
    email AS customer_id__email,
    submit_date AS responded_at,
    NULLIF(trim(CAST(_extra AS MAP(VARCHAR, VARCHAR))[nps_header]), '') AS nps,
    CASE
        WHEN nps_header IS NULL AND {{ option('nps_question') }} IS NOT NULL
            THEN 'no column of this file is the NPS question named in manifest.json '
                || '(options.typeform.nps_question)'
        WHEN nps_header IS NULL
            THEN 'no NPS question: no column header contains "recommend" (name the '
                || 'question in manifest.json options.typeform.nps_question)'
        WHEN email IS NULL THEN 'no respondent email (hidden field email)'
    END AS _reject,
    _source_file,
    _line_number
FROM answers
