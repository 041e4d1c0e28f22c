"""Right to erasure: remove customers listed in `erasure_requests` from raw and history.

dbt's staging drops the same customers from every mart (stg_erased_customers); this module
removes their rows from the raw tables and the segment history, so that after the next
published run nothing of them is left but the request itself (kept so the erasure is
re-applied if an older export is ever re-ingested).
"""

from __future__ import annotations

import duckdb

ERASED_IDS_SQL = """
CREATE OR REPLACE TEMP TABLE _erased AS
SELECT customer_id FROM raw.erasure_requests WHERE customer_id IS NOT NULL
UNION
SELECT c.customer_id FROM raw.customers c
JOIN raw.erasure_requests r ON lower(trim(c.email)) = lower(trim(r.email))
WHERE r.email IS NOT NULL
"""

# (table, column holding a customer id) whose rows are deleted.
DELETE_BY = (
    ("raw.customers", "customer_id"),
    ("raw.orders", "customer_id"),
    ("raw.referrals", "referrer_customer_id"),
    ("raw.surveys", "customer_id"),
    ("raw.events", "customer_id"),
    ("history.segment_assignments", "customer_id"),
)


def apply_erasure(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Delete every trace of erased customers; returns rows removed per table."""
    con.execute(ERASED_IDS_SQL)
    erased = con.execute("SELECT count(*) FROM _erased").fetchone()[0]
    removed: dict[str, int] = {"customers_erased": erased}
    if not erased:
        return removed
    con.execute("BEGIN TRANSACTION")
    try:
        for table, column in DELETE_BY:
            n = con.execute(
                f"DELETE FROM {table} WHERE {column} IN (SELECT customer_id FROM _erased)"
            ).fetchone()[0]
            removed[table] = n
        # A referral to an erased friend stays (it was sent) but loses who the friend was.
        removed["raw.referrals (referee cleared)"] = con.execute(
            """
            UPDATE raw.referrals SET referee_customer_id = NULL, referee_email = NULL
            WHERE referee_customer_id IN (SELECT customer_id FROM _erased)
               OR lower(trim(referee_email)) IN (
                   SELECT lower(trim(email)) FROM raw.erasure_requests WHERE email IS NOT NULL)
            """
        ).fetchone()[0]
        # Quarantined rows keep the raw row as JSON: drop those naming an erased customer.
        removed["raw.quarantine"] = con.execute(
            """
            DELETE FROM raw.quarantine q
            WHERE EXISTS (
                SELECT 1 FROM _erased e
                WHERE e.customer_id IN (
                    json_extract_string(q.raw_row, '$.customer_id'),
                    json_extract_string(q.raw_row, '$.referrer_customer_id'),
                    json_extract_string(q.raw_row, '$.referee_customer_id')))
               OR lower(trim(json_extract_string(q.raw_row, '$.email'))) IN (
                   SELECT lower(trim(email)) FROM raw.erasure_requests WHERE email IS NOT NULL)
            """
        ).fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return removed
