"""Ingesting one table file: good rows into raw.<table>, bad rows into raw.quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from pipelines.ingest.clean import ingest_clean_csv
from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.reading import is_csv, load_text_table
from pipelines.ingest.rules import (
    checked_sql,
    duplicate_ranks,
    insert_raw_sql,
    unknown_customer_lines,
)
from pipelines.ingest.sql import sql_literal
from pipelines.schemas import Table


@dataclass
class TableResult:
    file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)


def _in_line_order(con: duckdb.DuckDBPyConnection, checked: str) -> bool:
    """Whether the table's rows are stored in line order (then inserts need no sort)."""
    (misplaced,) = con.execute(
        f"SELECT count(*) FROM {checked} "
        f"WHERE _line_number <> rowid - (SELECT min(rowid) FROM {checked}) + 2"
    ).fetchone()
    return misplaced == 0


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    has_known: bool,
    bad_row_threshold: float,
) -> TableResult:
    if is_csv(path):
        rows = ingest_clean_csv(con, folder, table, path, has_known)
        if rows is not None:
            return TableResult(path.name, rows, rows, 0)
    tmp, all_cols, mapping = load_text_table(con, folder, path, table)
    checked = f"_checked_{table.name}"
    dups = duplicate_ranks(con, table, tmp, mapping)
    unknown = unknown_customer_lines(con, table, tmp, mapping) if has_known else {}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {checked} AS "
        f"{checked_sql(table, tmp, all_cols, mapping, has_known, dups, unknown)}"
    )
    for helper in [dups, *unknown.values()]:
        if helper is not None:
            con.execute(f"DROP TABLE {helper}")
    con.execute(f"DROP TABLE {tmp}")
    rows_read, bad = con.execute(f"SELECT count(*), count(_problem) FROM {checked}").fetchone()
    if rows_read and bad / rows_read > bad_row_threshold:
        top = con.execute(
            f"SELECT _problem.reason, _problem.column_name, count(*) n FROM {checked} "
            "WHERE _problem IS NOT NULL GROUP BY ALL ORDER BY n DESC, 1, 2 LIMIT 1"
        ).fetchone()
        raise ExportRefused(
            folder.path,
            path.name,
            f"{bad} of {rows_read} rows are bad ({bad / rows_read:.1%} > "
            f"{bad_row_threshold:.0%} threshold); most common: {top[0]} in column {top[1]}",
        )
    export_date = folder.export_date.isoformat()
    # Rows are normally stored in line order already; sort only when they are not.
    order = "" if _in_line_order(con, checked) else " ORDER BY _line_number"
    con.execute(
        insert_raw_sql(table, folder.export_date, checked, f" WHERE _problem IS NULL{order}")
    )
    if bad:
        con.execute(
            "INSERT INTO raw.quarantine SELECT "
            f"DATE {sql_literal(export_date)}, {sql_literal(path.name)}, _line_number, "
            f"_problem.column_name, _problem.value, _problem.reason, _raw_row FROM {checked} "
            "WHERE _problem IS NOT NULL ORDER BY _line_number"
        )
    reasons = (
        dict(
            con.execute(
                f"SELECT _problem.reason, count(*) FROM {checked} WHERE _problem IS NOT NULL "
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        if bad
        else {}
    )
    con.execute(f"DROP TABLE {checked}")
    return TableResult(path.name, rows_read, rows_read - bad, bad, reasons)


def refresh_known_customers(con: duckdb.DuckDBPyConnection, export_date: date) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _known_customers AS "
        "SELECT DISTINCT customer_id FROM raw.customers WHERE _export_date <= ?",
        [export_date],
    )
