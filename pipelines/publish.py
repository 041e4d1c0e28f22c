"""What analysts get: the analysts' warehouse, written fresh from the run's build store.

The pipeline's store (raw exports with their personal data, quarantine, identity
crosswalk, staging, history) is private to the pipeline; analysts read a separate DuckDB
file holding only
- `marts`: every marts table (hashed or source ids, no email, name or phone), and
- `audit`: what the night ingested, without any row content: exports (date, mode), the
  per-system counts, quarantine counts by file/column/reason, refused exports.
The file is written new each night (never updated in place), so nothing an erasure
removed can linger in its free blocks, and its size follows the marts, not the history.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from pipelines.sql import quote_ident, sql_literal

PUBLISHED_SCHEMAS = ("marts", "audit")

# The analysts' file is written in DuckDB's v1.5.0 storage format (the store keeps the
# engine's default): readable by DuckDB 1.5 and later, which includes the newest DuckDB CLI
# on PyPI (duckdb-cli 1.5.6, `make sql`) and analysts' own 1.5 tools; 1.5.6 refuses the
# default format of duckdb 2.0 ("version number 69 ... only versions between 64 and 68").
ANALYSTS_STORAGE_VERSION = "v1.5.0"

# audit.<name>: SELECT over the build store (no row content, no personal data)
AUDIT_TABLES = {
    "exports": "SELECT export_date, mode FROM raw.exports ORDER BY export_date",
    "export_sources": (
        "SELECT export_date, source_system, files, rows_read, rows_skipped, rows_merged, "
        "rows_quarantined, rows_loaded, detail FROM raw.export_sources "
        "ORDER BY export_date, source_system"
    ),
    "quarantine_summary": (
        "SELECT export_date, file, source_system, column_name, reason, count(*) AS rows "
        "FROM raw.quarantine GROUP BY ALL ORDER BY ALL"
    ),
    "refused_exports": (
        "SELECT export_date, mode, file, reason, resolution, resolved_at "
        "FROM raw.refused_exports ORDER BY export_date"
    ),
}


def write_analysts_file(con: duckdb.DuckDBPyConnection, target: Path) -> None:
    """Write the analysts' warehouse to `target` (a new file) from the store `con` is
    connected to: every marts table in its stored order, and the audit tables."""
    target.unlink(missing_ok=True)
    con.execute(
        f"ATTACH {sql_literal(str(target))} AS analysts "
        f"(STORAGE_VERSION {sql_literal(ANALYSTS_STORAGE_VERSION)})"
    )
    try:
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"CREATE SCHEMA analysts.{schema}")
        marts = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'marts' ORDER BY table_name"
        ).fetchall()
        for (name,) in marts:
            table = quote_ident(name)
            con.execute(f"CREATE TABLE analysts.marts.{table} AS SELECT * FROM marts.{table}")
        for name, select in AUDIT_TABLES.items():
            con.execute(f"CREATE TABLE analysts.audit.{quote_ident(name)} AS {select}")
    finally:
        con.execute("DETACH analysts")


def published_as_of(published: Path) -> date | None:
    """The newest export date in the analysts' warehouse (None before the first publish).
    Reads `audit.exports`; a warehouse of an older release (raw inside) has raw.exports."""
    if not published.exists():
        return None
    con = duckdb.connect(str(published), read_only=True)
    try:
        for table in ("audit.exports", "raw.exports"):
            try:
                return con.execute(f"SELECT max(export_date) FROM {table}").fetchone()[0]
            except duckdb.CatalogException:
                continue
        return None
    finally:
        con.close()
