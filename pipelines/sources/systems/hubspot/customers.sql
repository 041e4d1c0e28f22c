-- HubSpot contacts -> contract customers: one customer per Record ID.  Signup = the day of
-- Create Date (HubSpot writes the account's time zone without an offset: taken as UTC);
-- acquisition channel = Original Source through the `original_source` map; a contact
-- unsubscribed from all email has not opted in (otherwise: not said).
SELECT
    record_id AS _source_id,
    email,
    first_name,
    last_name,
    coalesce(phone, mobile_phone) AS phone,
    city,
    create_date AS signup_date,
    {{ map('original_source', 'original_source') }} AS acquisition_channel,
    CASE WHEN lower(unsubscribed) IN ('true', 'yes', '1') THEN 'false' END AS marketing_opt_in,
    last_modified AS updated_at,
    _source_file,
    _line_number
FROM contacts
