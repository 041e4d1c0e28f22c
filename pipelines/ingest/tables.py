"""Ingesting one table: good rows into raw.<table>, bad rows into raw.quarantine.

The rows come from a contract-layout file (`ingest_table`) or were mapped from vendor files
(`ingest_mapped_table`, pipelines/sources); both go through the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from pipelines.ingest.clean import PARSED, ingest_clean_csv
from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.reading import is_csv, load_text_table
from pipelines.ingest.rules import (
    Lineage,
    checked_sql,
    duplicate_ranks,
    insert_raw_sql,
    unknown_customer_lines,
)
from pipelines.ingest.versions import VersionCounts
from pipelines.schemas import Table
from pipelines.sql import sql_literal


@dataclass
class TableResult:
    file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    # Rows mapped from vendor files: system -> {"rows": n, "quarantined": n} (lineage).
    by_system: dict[str, dict[str, int]] = field(default_factory=dict)
    # What the good rows did to raw (ingest/versions.py), once stored.
    versions: VersionCounts | None = None
    # The incoming rows are only the new and changed ones, compared already (clean path).
    compared: bool = False
    # The rows are in raw already, all new: the table's first export (clean path).
    stored: bool = False
    # The temp table of the rows parsed (clean path, `keep_parsed`); None: the incoming
    # rows are every good row of the file.
    parsed_rows: str | None = None


def _in_row_order(con: duckdb.DuckDBPyConnection, checked: str) -> bool:
    """Whether the table's rows are stored in row order (then inserts need no sort)."""
    (misplaced,) = con.execute(
        f"SELECT count(*) FROM {checked} "
        f"WHERE _row <> rowid - (SELECT min(rowid) FROM {checked}) + (SELECT min(_row) "
        f"FROM {checked})"
    ).fetchone()
    return misplaced == 0


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    bad_row_threshold: float,
    changed_only: bool = False,
    keep_parsed: bool = False,
) -> TableResult:
    """One file into raw.<table> and raw.quarantine.  Customer ids are checked against
    `_known_customers` (`refresh_known_customers`), so customers are loaded first.
    ``changed_only``, ``keep_parsed``: see `clean.ingest_clean_csv`."""
    lineage = Lineage(path.name)
    if is_csv(path):
        # The clean path writes its lineage through insert_raw_sql's session variables.
        con.execute(f"SET VARIABLE ingest_source_system = {sql_literal(lineage.system)}")
        con.execute(f"SET VARIABLE ingest_source_file = {sql_literal(path.name)}")
        clean = ingest_clean_csv(con, folder, table, path, changed_only, keep_parsed)
        if clean is not None:
            return TableResult(
                path.name,
                clean.rows,
                clean.rows,
                0,
                compared=clean.compared,
                stored=clean.stored,
                parsed_rows=PARSED if keep_parsed else None,
            )
    tmp, all_cols, mapping = load_text_table(con, folder, path, table)
    return _check_and_insert(con, folder, table, tmp, all_cols, mapping, lineage, bad_row_threshold)


def ingest_mapped_table(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    tmp: str,
    bad_row_threshold: float,
    files: str = "",
) -> TableResult:
    """Rows mapped from vendor files (temp table `tmp`: contract columns as text plus
    `rules.MAPPED_META_COLUMNS`) into raw.<table> and raw.quarantine, through the same
    rules as a file read as text.  Consumes `tmp`; `files` names the files they come from."""
    described = [r[0] for r in con.execute(f"DESCRIBE {tmp}").fetchall()]
    mapping = {c: c for c in described if c in table.column_names}
    result = _check_and_insert(
        con, folder, table, tmp, list(mapping), mapping, Lineage(None), bad_row_threshold
    )
    result.file = files or result.file
    return result


def _refuse_if_too_bad(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    checked: str,
    lineage: Lineage,
    bad_row_threshold: float,
) -> None:
    """Refuse the export when one file's share of bad rows is above the threshold (mapped
    rows: the rows of this table mapped from one vendor file)."""
    file = "_source_file" if lineage.mapped else sql_literal(lineage.file or "")
    rows = con.execute(
        f"SELECT {file} AS f, count(*), count(_problem) FROM {checked} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for name, rows_read, bad in rows:
        if not (rows_read and bad / rows_read > bad_row_threshold):
            continue
        top = con.execute(
            f"SELECT _problem.reason, _problem.column_name, count(*) n FROM {checked} "
            f"WHERE _problem IS NOT NULL AND {file} = ? GROUP BY ALL ORDER BY n DESC, 1, 2 "
            "LIMIT 1",
            [name],
        ).fetchone()
        what = f"{table.name} rows mapped from it" if lineage.mapped else "rows"
        raise ExportRefused(
            folder.path,
            name,
            f"{bad} of {rows_read} {what} are bad ({bad / rows_read:.1%} > "
            f"{bad_row_threshold:.0%} threshold); most common: {top[0]} in column {top[1]}",
        )


def _check_and_insert(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    tmp: str,
    all_cols: list[str],
    mapping: dict[str, str],
    lineage: Lineage,
    bad_row_threshold: float,
) -> TableResult:
    """The text path: check every row of `tmp`, refuse or insert good rows into raw and
    bad ones into the quarantine.  Consumes `tmp`."""
    has_known = table.checks_customers
    checked = f"_checked_{table.name}"
    dups = duplicate_ranks(con, table, tmp, mapping, lineage)
    unknown = unknown_customer_lines(con, table, tmp, mapping, lineage) if has_known else {}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {checked} AS "
        f"{checked_sql(table, tmp, all_cols, mapping, has_known, dups, unknown, lineage)}"
    )
    for helper in [dups, *unknown.values()]:
        if helper is not None:
            con.execute(f"DROP TABLE {helper}")
    con.execute(f"DROP TABLE {tmp}")
    rows_read, bad = con.execute(f"SELECT count(*), count(_problem) FROM {checked}").fetchone()
    _refuse_if_too_bad(con, folder, table, checked, lineage, bad_row_threshold)
    export_date = folder.export_date.isoformat()
    # Rows are normally stored in row order already; sort only when they are not.
    order = "" if _in_row_order(con, checked) else " ORDER BY _row"
    con.execute(
        insert_raw_sql(
            table, folder.export_date, checked, f" WHERE _problem IS NULL{order}", lineage
        )
    )
    if lineage.mapped:
        system, file = "_source_system", "_source_file"
    else:
        system, file = sql_literal(lineage.system), sql_literal(lineage.file or "")
    if bad:
        con.execute(
            "INSERT INTO raw.quarantine (export_date, file, line_number, column_name, value, "
            "reason, raw_row, source_system, customer_id) SELECT "
            f"DATE {sql_literal(export_date)}, {file}, _line_number, "
            f"_problem.column_name, _problem.value, _problem.reason, _raw_row, {system}, "
            f"_customer FROM {checked} WHERE _problem IS NOT NULL ORDER BY _row"
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
    by_system: dict[str, dict[str, int]] = {}
    if lineage.mapped:
        for name, n, q in con.execute(
            f"SELECT _source_system, count(*), count(_problem) FROM {checked} GROUP BY 1 ORDER BY 1"
        ).fetchall():
            by_system[name] = {"rows": n, "quarantined": q}
        files = con.execute(f"SELECT DISTINCT _source_file FROM {checked} ORDER BY 1").fetchall()
        label = ", ".join(f for (f,) in files)
    else:
        label = lineage.file or ""
    con.execute(f"DROP TABLE {checked}")
    return TableResult(label, rows_read, rows_read - bad, bad, reasons, by_system)


def refresh_known_customers(con: duckdb.DuckDBPyConnection, export_date: date) -> None:
    """Customers with any version up to this export: the ids other tables may name."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _known_customers AS "
        "SELECT DISTINCT customer_id FROM raw.customers WHERE _export_date <= ?",
        [export_date],
    )
