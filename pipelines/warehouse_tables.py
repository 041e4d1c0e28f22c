"""DDL of the tables Python writes (raw, quarantine, segmentation outputs).

dbt reads these as sources, so they must exist, even empty, before the first dbt run.
"""

from __future__ import annotations

from datetime import date

import duckdb

from pipelines.schemas import DUCKDB_TYPES, RAW_META_COLUMNS, TABLES

EXPORTS_DDL = """
CREATE TABLE IF NOT EXISTS raw.exports (
    export_date DATE PRIMARY KEY,
    mode VARCHAR NOT NULL,
    folder VARCHAR NOT NULL,
    files JSON
)"""

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS raw.quarantine (
    export_date DATE NOT NULL,
    file VARCHAR NOT NULL,
    line_number BIGINT,
    column_name VARCHAR,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    raw_row JSON
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
    """CREATE TABLE IF NOT EXISTS history.segment_assignments (
        as_of_date DATE NOT NULL,
        customer_id VARCHAR NOT NULL,
        segment_id VARCHAR NOT NULL,
        segment_name VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS history.segment_centroids (
        as_of_date DATE NOT NULL,
        segment_id VARCHAR NOT NULL,
        segment_name VARCHAR NOT NULL,
        feature VARCHAR NOT NULL,
        value DOUBLE NOT NULL
    )""",
)


def latest_export_date(con: duckdb.DuckDBPyConnection) -> date | None:
    """The run's as-of date: the newest ingested export (None before the first ingest)."""
    row = con.execute("SELECT max(export_date) FROM raw.exports").fetchone()
    return row[0] if row else None


def raw_table_ddl(table: str) -> str:
    """CREATE TABLE statement of one raw table, columns in contract order."""
    spec = TABLES[table]
    cols = [f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in spec.columns]
    cols += [f'"{name}" {typ}' for name, typ in RAW_META_COLUMNS.items()]
    return f"CREATE TABLE IF NOT EXISTS raw.{table} ({', '.join(cols)})"


def create_python_owned_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every Python-written table that does not exist yet (idempotent)."""
    for schema in ("raw", "marts", "history"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table in TABLES:
        con.execute(raw_table_ddl(table))
    con.execute(EXPORTS_DDL)
    con.execute(QUARANTINE_DDL)
    for ddl in SEGMENTATION_DDL:
        con.execute(ddl)
