"""DDL of the tables Python writes (raw, quarantine, segmentation outputs).

dbt reads these as sources, so they must exist, even empty, before the first dbt run.
"""

from __future__ import annotations

from datetime import date

import duckdb

from pipelines.ingest.versions import mark_superseded
from pipelines.maintenance import REQUESTS_DDL
from pipelines.schemas import DUCKDB_TYPES, RAW_META_COLUMNS, TABLES
from pipelines.segment_spells import upgrade_assignments
from pipelines.sql import quote_ident, transaction

# Added after `_row_hash`, with its values (`_add_superseded_marker`).
SUPERSEDED = "_superseded_on"
# Added after it, NULL for the versions stored before (pipelines/ingest/lines.py).
LINE_HASH = "_line_hash"

EXPORTS_DDL = """
CREATE TABLE IF NOT EXISTS raw.exports (
    export_date DATE PRIMARY KEY,
    mode VARCHAR NOT NULL,
    folder VARCHAR NOT NULL,
    files JSON,
    tables JSON
)"""
# Per table: rows read, loaded, quarantined, and what they did to raw (new, changed,
# unchanged, absent, returned: pipelines/ingest/versions.py).  Added after the first release.
EXPORTS_ADDED_COLUMNS = {"tables": "JSON"}

# Keys a full export lacked (present false) or delivered again after that (present
# true); a key is still in raw and staging either way (pipelines/ingest/versions.py).
RECORD_PRESENCE_DDL = """
CREATE TABLE IF NOT EXISTS raw.record_presence (
    table_name VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    export_date DATE NOT NULL,
    present BOOLEAN NOT NULL
)"""

# What each raw table's stored `_row_hash` was computed with (pipelines/ingest/versions.py).
ROW_HASHES_DDL = """
CREATE TABLE IF NOT EXISTS raw.row_hashes (
    table_name VARCHAR PRIMARY KEY,
    signature VARCHAR NOT NULL
)"""

# What each source system of an export gave (pipelines/ingest/export.py, `source_rows`):
# files and layouts, rows read, skipped by design, merged into another system's customer,
# quarantined and loaded (over its tables); `contract` for
# the export's contract-layout files.  Read by the report.
EXPORT_SOURCES_DDL = """
CREATE TABLE IF NOT EXISTS raw.export_sources (
    export_date DATE NOT NULL,
    source_system VARCHAR NOT NULL,
    files JSON NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_skipped BIGINT NOT NULL,
    rows_merged BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    detail JSON NOT NULL,
    PRIMARY KEY (export_date, source_system)
)"""

# Refused exports superseded by a newer full export or skipped by an operator
# (pipelines/ingest/backlog.py): a night does not try them again unless their files change.
REFUSED_EXPORTS_DDL = """
CREATE TABLE IF NOT EXISTS raw.refused_exports (
    export_date DATE PRIMARY KEY,
    mode VARCHAR NOT NULL,
    folder VARCHAR NOT NULL,
    files JSON NOT NULL,
    file VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    resolution VARCHAR NOT NULL,
    resolved_by VARCHAR NOT NULL,
    resolved_at TIMESTAMP NOT NULL,
    note VARCHAR
)"""

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS raw.quarantine (
    export_date DATE NOT NULL,
    file VARCHAR NOT NULL,
    line_number BIGINT,
    column_name VARCHAR,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    raw_row JSON,
    source_system VARCHAR,
    customer_id VARCHAR
)"""

# Quarantine columns added after the first release (older warehouses get them by ALTER).
QUARANTINE_ADDED_COLUMNS = {"source_system": "VARCHAR", "customer_id": "VARCHAR"}

# The identity crosswalk (pipelines/sources/identity.py): one row per source identity and
# email hash seen; no clear email.  Maintained by ingest, read by staging.
CUSTOMER_IDENTITIES_DDL = """
CREATE TABLE IF NOT EXISTS raw.customer_identities (
    source_system VARCHAR NOT NULL,
    source_id VARCHAR,
    customer_id VARCHAR NOT NULL,
    email_hash VARCHAR,
    first_seen_export DATE NOT NULL,
    salt_md5 VARCHAR NOT NULL
)"""

SEGMENTATION_DDL = (
    """CREATE TABLE IF NOT EXISTS marts.customer_segments (
        customer_id VARCHAR NOT NULL,
        segment_id VARCHAR NOT NULL,
        segment_name VARCHAR NOT NULL,
        as_of_date DATE NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS marts.segment_profiles (
        segment_id VARCHAR NOT NULL,
        segment_name VARCHAR NOT NULL,
        customers BIGINT NOT NULL,
        share DOUBLE NOT NULL,
        persona VARCHAR NOT NULL,
        recommended_incentive VARCHAR NOT NULL,
        as_of_date DATE NOT NULL
    )""",
    # One row per customer per unbroken stay in a segment over consecutive runs,
    # [valid_from, valid_to), valid_to NULL while current (pipelines/segment_spells.py).
    """CREATE TABLE IF NOT EXISTS history.segment_spells (
        customer_id VARCHAR NOT NULL,
        segment_id VARCHAR NOT NULL,
        valid_from DATE NOT NULL,
        valid_to DATE
    )""",
    """CREATE TABLE IF NOT EXISTS history.segment_centroids (
        as_of_date DATE NOT NULL,
        segment_id VARCHAR NOT NULL,
        segment_name VARCHAR NOT NULL,
        feature VARCHAR NOT NULL,
        value DOUBLE NOT NULL
    )""",
    # One row per run with clustered customers: how its k was chosen (k_scan | warm_start,
    # warm_from = the run warm-started from) and the last full k scan's date and chosen
    # silhouette, carried forward by warm starts (pipelines/segmentation/warm.py).
    """CREATE TABLE IF NOT EXISTS history.segment_runs (
        as_of_date DATE NOT NULL,
        method VARCHAR NOT NULL,
        k INTEGER NOT NULL,
        silhouette DOUBLE,
        warm_from DATE,
        last_scan_date DATE NOT NULL,
        last_scan_silhouette DOUBLE
    )""",
)
SEGMENT_RUNS = "history.segment_runs"


def latest_export_date(con: duckdb.DuckDBPyConnection) -> date | None:
    """The run's as-of date: the newest ingested export (None before the first ingest)."""
    row = con.execute("SELECT max(export_date) FROM raw.exports").fetchone()
    return row[0] if row else None


def raw_table_ddl(table: str) -> str:
    """CREATE TABLE statement of one raw table, columns in contract order."""
    spec = TABLES[table]
    cols = [f"{quote_ident(c.name)} {DUCKDB_TYPES[c.type]}" for c in spec.columns]
    cols += [f"{quote_ident(name)} {typ}" for name, typ in RAW_META_COLUMNS.items()]
    return f"CREATE TABLE IF NOT EXISTS raw.{table} ({', '.join(cols)})"


def _columns_of(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    schema, name = table.split(".")
    return {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()
    }


def _add_missing_columns(
    con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]
) -> None:
    """Columns a warehouse made by an older release lacks (appended, so in DDL order)."""
    have = _columns_of(con, table)
    for column, typ in columns.items():
        if column not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote_ident(column)} {typ}")


def _add_superseded_marker(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """`_superseded_on` for a raw table of an older release: the column and its values
    for every stored version, together or not at all (pipelines/ingest/versions.py)."""
    relation = f"raw.{table}"
    if SUPERSEDED in _columns_of(con, relation):
        return
    with transaction(con):
        typ = RAW_META_COLUMNS[SUPERSEDED]
        con.execute(f"ALTER TABLE {relation} ADD COLUMN {SUPERSEDED} {typ}")
        if TABLES[table].key:
            mark_superseded(con, TABLES[table], None)


def create_python_owned_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every Python-written table that does not exist yet, add the columns a
    warehouse of an older release lacks (`_superseded_on` with its values), and turn its
    per-run segment history into spells (idempotent)."""
    for schema in ("raw", "marts", "history"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table in TABLES:
        con.execute(raw_table_ddl(table))
        added = {c: t for c, t in RAW_META_COLUMNS.items() if c not in (SUPERSEDED, LINE_HASH)}
        _add_missing_columns(con, f"raw.{table}", added)
        _add_superseded_marker(con, table)
        _add_missing_columns(con, f"raw.{table}", {LINE_HASH: RAW_META_COLUMNS[LINE_HASH]})
    con.execute(EXPORTS_DDL)
    _add_missing_columns(con, "raw.exports", EXPORTS_ADDED_COLUMNS)
    con.execute(EXPORT_SOURCES_DDL)
    con.execute(RECORD_PRESENCE_DDL)
    con.execute(ROW_HASHES_DDL)
    con.execute(REQUESTS_DDL)
    con.execute(QUARANTINE_DDL)
    con.execute(REFUSED_EXPORTS_DDL)
    _add_missing_columns(con, "raw.quarantine", QUARANTINE_ADDED_COLUMNS)
    con.execute(CUSTOMER_IDENTITIES_DDL)
    for ddl in SEGMENTATION_DDL:
        con.execute(ddl)
    upgrade_assignments(con)
