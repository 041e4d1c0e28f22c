"""The fast path for a clean CSV file: one typed read, one check, one insert.

Most nights every row of every file is good and already in normal form.  DuckDB's CSV
reader types columns while it parses, at the cost of reading text, so a CSV file is first
read typed and checked in one scan: every rule of the text path, known customers, and
text already in normal form (read as is, it gives the value the text path would make of
it), plus one grouping for unique keys.  A clean file then goes to raw as read.
Otherwise the text path (`tables.ingest_table`) reads the file again as text, normalises
and quarantines row by row.  The reader casts with DuckDB's own casts, the text path with
TRY_CAST of the trimmed text: the same values, so raw is the same whichever path a file
took (tests/test_ingest_clean.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import duckdb

from pipelines.ingest.casting import typed_expr
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.reading import match_columns, reader_sql
from pipelines.ingest.rules import insert_raw_sql, row_checks, typed_sql
from pipelines.ingest.sql import text_of
from pipelines.ingest.versions import CHANGED_ROWS, delivered_sql, find_changes
from pipelines.schemas import Column, Table
from pipelines.sql import quote_ident, sql_literal

# Contract types the CSV reader types itself.  Ids, strings and bools stay text (the
# contract's bools include yes/no, y/n, which DuckDB's BOOLEAN cast does not accept).
READER_TYPES = {
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",  # offsets honoured; stored as UTC TIMESTAMP, as on text
    "money": "DECIMAL(18,4)",
    "decimal": "DECIMAL(18,8)",
    "int": "BIGINT",
}


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for name in tables:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _read_typed(
    con: duckdb.DuckDBPyConnection, folder: ExportFolder, path: Path, table: Table
) -> tuple[str, list[str], dict[str, str]] | None:
    """The file in a temp table, contract columns typed; None when the reader rejects a
    row (the text path then says which and why).  A required column missing from the
    header refuses the export here, as on the text path."""
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader_sql(path)}").fetchall()
    except duckdb.Error:
        return None
    cols = [r[0] for r in described]
    mapping = match_columns(folder, path, table, cols)
    type_of = {src: READER_TYPES.get(table.column(name).type) for name, src in mapping.items()}
    types = ", ".join(f"{sql_literal(c)}: {sql_literal(type_of.get(c) or 'VARCHAR')}" for c in cols)
    tmp, rejects = f"_typed_{table.name}", f"_rejects_{table.name}"
    options = (
        f", types = {{{types}}}, store_rejects = true, "
        f"rejects_table = {sql_literal(rejects)}, rejects_scan = {sql_literal(rejects + '_scan')}"
    )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT * FROM {reader_sql(path, options)}"
        )
        (rejected,) = con.execute(f"SELECT count(*) FROM {rejects}").fetchone()
    except duckdb.Error:
        rejected = None
    _drop(con, rejects, rejects + "_scan")
    if rejected != 0:
        _drop(con, tmp)
        return None
    return tmp, cols, mapping


def _as_read(col: Column, ref: str) -> tuple[str, str]:
    """(text, value) of a column taken as read: the text path's value for normal text."""
    if col.type == "timestamp":
        return ref, f"CAST({ref} AS TIMESTAMP)"
    if col.type == "bool":
        return ref, typed_expr(col, ref)
    return ref, ref


def _not_normal(col: Column, name: str) -> str | None:
    """True when the text path would make another value of this text as read: its value
    of the trimmed text (blank -> NULL, value sets lower-cased, currencies upper-cased,
    bools mapped) differs from the value taken as read."""
    if col.type in READER_TYPES:
        return None  # typed by the reader with the same casts
    return f"v_{name} IS DISTINCT FROM {typed_expr(col, text_of(f't_{name}'))}"


class CleanLoad(NamedTuple):
    rows: int  # rows read (all good)
    # Whether only the new and changed rows went to the incoming table, compared already
    # (`versions.find_changes`); False: every row did.
    compared: bool


def ingest_clean_csv(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    changed_only: bool = False,
) -> CleanLoad | None:
    """Insert every row of a clean CSV file into the incoming rows; returns what was
    loaded, or None (nothing written) when a row needs the text path.

    ``changed_only`` (a keyed table of a full export): rows delivered as raw stores them
    already are neither checked again nor copied; they passed every check when that
    version was stored, and the checks depend on nothing but the row and the known
    customers, whom raw never loses but by erasure (which also removes their rows).
    """
    has_known = table.checks_customers
    loaded = _read_typed(con, folder, path, table)
    if loaded is None:
        return None
    tmp, all_cols, mapping = loaded
    values = {
        name: _as_read(table.column(name), f"s.{quote_ident(src)}") for name, src in mapping.items()
    }
    typed = f"({typed_sql(table, tmp, all_cols, mapping, has_known, None, values)}) typed"
    unchecked = f"({typed_sql(table, tmp, all_cols, mapping, False, None, values)}) t"
    compared = (
        changed_only
        and bool(table.key)
        and find_changes(
            con,
            table,
            folder.export_date,
            "full",
            delivered_sql(table, unchecked, lambda c: f"v_{c}"),
        )
    )
    if compared:
        keys = " AND ".join(f"d.{quote_ident(k)} = typed.v_{k}" for k in table.key)
        typed += f" SEMI JOIN {CHANGED_ROWS} d ON {keys}"
    # Duplicate keys are counted by a grouping below, not ranked per row.
    conds = [cond for cond, _, _ in row_checks(table, has_known, duplicates=False)]
    conds += [c for c in (_not_normal(table.column(n), n) for n in mapping) if c is not None]
    rows, bad = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {' OR '.join(f'({c})' for c in conds)}) "
        f"FROM {typed}"
    ).fetchone()
    if compared:
        (rows,) = con.execute(f"SELECT count(*) FROM {tmp}").fetchone()
    if not bad and table.key:
        # Text is in normal form (checked above), so keys compare as read.  A grouping,
        # not count(DISTINCT): it spills to disk at 10M customers.
        keys = [f"s.{quote_ident(mapping[k])}" for k in table.key]
        (bad,) = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {tmp} s "
            f"WHERE {' AND '.join(k + ' IS NOT NULL' for k in keys)} "
            f"GROUP BY {', '.join(keys)} HAVING count(*) > 1)"
        ).fetchone()
    if bad:
        _drop(con, tmp)
        return None
    # The changed rows are few: sorted, they keep the file's order whatever the join did.
    order = " ORDER BY _line_number" if compared else ""
    con.execute(insert_raw_sql(table, folder.export_date, typed, order))
    _drop(con, tmp)
    return CleanLoad(rows, compared)
