"""Right to erasure: remove customers listed in `erasure_requests` from raw and history.

dbt's staging drops the same customers from every mart (stg_erased_customers); this module
removes their rows from the raw tables, the identity crosswalk, the quarantine and the
segment history, so that after the next published run nothing of them is left but the
request itself (kept so the erasure is re-applied if an older export is ever re-ingested).
"""

from __future__ import annotations

import duckdb

from pipelines.ingest.versions import mark_superseded
from pipelines.maintenance import request_compaction
from pipelines.schemas import CUSTOMER_TABLE, TABLES
from pipelines.sql import quote_ident, sql_literal, transaction

ERASED_IDS_SQL = """
CREATE OR REPLACE TEMP TABLE _erased AS
SELECT customer_id FROM raw.erasure_requests WHERE customer_id IS NOT NULL
UNION
SELECT c.customer_id FROM raw.customers c
JOIN raw.erasure_requests r ON lower(trim(c.email)) = lower(trim(r.email))
WHERE r.email IS NOT NULL
"""

# Every email of an erased customer: the requests' own and those raw.customers holds.
ERASED_EMAILS_SQL = """
CREATE OR REPLACE TEMP TABLE _erased_emails AS
SELECT email FROM raw.erasure_requests WHERE email IS NOT NULL
UNION
SELECT c.email FROM raw.customers c
WHERE c.email IS NOT NULL AND c.customer_id IN (SELECT customer_id FROM _erased)
"""


def delete_by() -> list[tuple[str, tuple[str, ...]]]:
    """(table, its columns holding a customer id) whose rows are deleted: the customers
    themselves, every raw table with a `customer_ref` column, the segment history."""
    found = [(f"raw.{CUSTOMER_TABLE}", TABLES[CUSTOMER_TABLE].key)]
    found += [
        (f"raw.{t.name}", tuple(c.name for c in t.columns if c.customer_ref))
        for t in TABLES.values()
        if t.checks_customers
    ]
    return [*found, ("history.segment_spells", ("customer_id",))]


def apply_erasure(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Delete every trace of erased customers; returns rows removed per table."""
    con.execute(ERASED_IDS_SQL)
    erased = con.execute("SELECT count(*) FROM _erased").fetchone()[0]
    removed: dict[str, int] = {"customers_erased": erased}
    if not erased:
        return removed
    con.execute(ERASED_EMAILS_SQL)
    with transaction(con):
        for table, columns in delete_by():
            erased_in = " OR ".join(
                f"{quote_ident(c)} IN (SELECT customer_id FROM _erased)" for c in columns
            )
            spec = TABLES.get(table.removeprefix("raw."))
            # An order's key is not its customer: a changed order may lose some versions
            # only, and the versions it keeps get their `_superseded_on` again.
            partly = spec is not None and bool(spec.key) and set(columns) != set(spec.key)
            if partly:
                keys = ", ".join(quote_ident(k) for k in spec.key)
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _erased_keys AS "
                    f"SELECT DISTINCT {keys} FROM {table} WHERE {erased_in}"
                )
            removed[table] = con.execute(f"DELETE FROM {table} WHERE {erased_in}").fetchone()[0]
            if partly:
                if removed[table]:
                    mark_superseded(con, spec, "SELECT * FROM _erased_keys")
                con.execute("DROP TABLE _erased_keys")
        # A referral to an erased friend stays (it was sent) but loses who the friend was.
        removed["raw.referrals (referee cleared)"] = con.execute(
            """
            UPDATE raw.referrals SET referee_customer_id = NULL, referee_email = NULL
            WHERE referee_customer_id IN (SELECT customer_id FROM _erased)
               OR lower(trim(referee_email)) IN (
                   SELECT lower(trim(email)) FROM raw.erasure_requests WHERE email IS NOT NULL)
            """
        ).fetchone()[0]
        # The identity crosswalk links their other systems' ids to them: forget those too.
        removed["raw.customer_identities"] = con.execute(
            "DELETE FROM raw.customer_identities "
            "WHERE customer_id IN (SELECT customer_id FROM _erased)"
        ).fetchone()[0]
        removed["raw.record_presence"] = con.execute(
            "DELETE FROM raw.record_presence WHERE table_name = ? "
            "AND key IN (SELECT customer_id FROM _erased)",
            [CUSTOMER_TABLE],
        ).fetchone()[0]
        # Quarantined rows keep the raw row as JSON: drop those naming an erased customer,
        # by the customer the row was about, a contract id column, or any value equal to an
        # erased email (a vendor file's row names its email column as the vendor does).
        id_columns = {c for _, cols in delete_by() for c in cols} | {"referee_customer_id"}
        quarantined_ids = ", ".join(
            f"json_extract_string(q.raw_row, {sql_literal('$.' + c)})" for c in sorted(id_columns)
        )
        removed["raw.quarantine"] = con.execute(
            f"""
            DELETE FROM raw.quarantine q
            WHERE q.customer_id IN (SELECT customer_id FROM _erased)
               OR EXISTS (
                SELECT 1 FROM _erased e
                WHERE e.customer_id IN ({quarantined_ids}))
               OR EXISTS (
                SELECT 1 FROM json_each(q.raw_row) j
                WHERE lower(trim(json_extract_string(j.value, '$'))) IN (
                    SELECT lower(trim(email)) FROM _erased_emails))
            """
        ).fetchone()[0]
    if sum(n for table, n in removed.items() if table != "customers_erased"):
        # their bytes may stay in the store's blocks until the file is rewritten
        request_compaction(con, "erasure")
    return removed
