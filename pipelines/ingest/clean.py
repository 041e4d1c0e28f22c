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

from datetime import date
from pathlib import Path
from typing import NamedTuple

import duckdb

from pipelines.ingest.casting import typed_expr
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.lines import (
    LINES,
    drop_lines,
    give_line_hashes,
    line_numbers_sql,
    line_signature,
    read_line_hashes,
    read_written_lines,
    scratch_file,
    split_lines,
    write_changed_lines,
    written_line_numbers_sql,
)
from pipelines.ingest.reading import match_columns, reader_sql
from pipelines.ingest.rules import insert_raw_sql, row_checks, typed_sql
from pipelines.ingest.sql import text_of
from pipelines.ingest.versions import (
    CHANGED_ROWS,
    INCOMING,
    delivered_sql,
    find_changes,
    find_line_changes,
    has_later_versions,
    keys_delivered_twice,
)
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
    # Whether the rows went straight to raw.<table> (its first export): nothing incoming.
    stored: bool = False


# The good rows a clean file delivered that were parsed (the whole file, or only its
# changed lines), as contract columns with `_export_date` and `_source_system`: what the
# identity crosswalk reads of a customers file (`keep_parsed`).
PARSED = "_parsed_rows"


def ingest_clean_csv(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    changed_only: bool = False,
    keep_parsed: bool = False,
) -> CleanLoad | None:
    """Insert every row of a clean CSV file into the incoming rows (a table's first
    export: into raw.<table> itself); returns what was loaded, or None (nothing written)
    when a row needs the text path.

    ``changed_only`` (a keyed table of a full export): rows delivered as raw stores them
    already are neither checked again nor copied; they passed every check when that
    version was stored, and the checks depend on nothing but the row and the known
    customers, whom raw never loses but by erasure (which also removes their rows).
    Their lines are not even parsed where `lines.split_lines` can tell them apart.
    ``keep_parsed``: the parsed rows stay in the temp table `PARSED` (unchanged lines that
    were not parsed are not in it).
    """
    lines = signature = None
    if changed_only and table.key:
        signature = line_signature(table, path)
        lines = read_line_hashes(con, path, signature)
    try:
        if lines is not None and signature is not None:
            loaded = _ingest_changed_lines(con, folder, table, path, signature, lines, keep_parsed)
            if loaded is not None:
                return loaded
        return _ingest_every_row(con, folder, table, path, changed_only, lines, keep_parsed)
    finally:
        drop_lines(con)


def _typed_values(table: Table, mapping: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {
        name: _as_read(table.column(name), f"s.{quote_ident(src)}") for name, src in mapping.items()
    }


def _bad_rows(
    con: duckdb.DuckDBPyConnection, table: Table, typed: str, mapping: dict[str, str]
) -> int:
    """Rows of `typed` that break a rule or are not in normal form (duplicate keys are
    counted by `_duplicate_keys`)."""
    conds = [cond for cond, _, _ in row_checks(table, table.checks_customers, duplicates=False)]
    conds += [c for c in (_not_normal(table.column(n), n) for n in mapping) if c is not None]
    (bad,) = con.execute(
        f"SELECT count(*) FILTER (WHERE {' OR '.join(f'({c})' for c in conds)}) FROM {typed}"
    ).fetchone()
    return bad


def _duplicate_keys(
    con: duckdb.DuckDBPyConnection, table: Table, tmp: str, mapping: dict[str, str]
) -> int:
    # Text is in normal form (checked first), so keys compare as read.  A grouping, not
    # count(DISTINCT): it spills to disk at 10M customers.
    keys = [f"s.{quote_ident(mapping[k])}" for k in table.key]
    (dups,) = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {tmp} s "
        f"WHERE {' AND '.join(k + ' IS NOT NULL' for k in keys)} "
        f"GROUP BY {', '.join(keys)} HAVING count(*) > 1)"
    ).fetchone()
    return dups


def _changed_rows(table: Table, rows: str) -> str:
    """The typed rows of `rows` whose key is new or changed (`_diff`), as `typed`."""
    keys = " AND ".join(f"d.{quote_ident(k)} = typed.v_{k}" for k in table.key)
    return f"({rows}) typed SEMI JOIN {CHANGED_ROWS} d ON {keys}"


def _delivered(table: Table, rows: str, extra: str = "") -> str:
    """`delivered_sql` of typed rows (`v_<col>`)."""
    return delivered_sql(table, f"({rows}) t", lambda c: f"v_{c}", extra)


def _keep_parsed(con: duckdb.DuckDBPyConnection, table: Table, day: date, rows: str) -> None:
    """`PARSED` from typed rows (`v_<col>`)."""
    cols = ", ".join(f"v_{c.name} AS {quote_ident(c.name)}" for c in table.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {PARSED} AS SELECT {cols}, "
        f"DATE {sql_literal(day.isoformat())} AS _export_date, "
        f"getvariable('ingest_source_system') AS _source_system FROM ({rows})"
    )


def _with_line_hash(query: str) -> str:
    """Each row of a whole file's typed rows with the hash of its line (`_lines`: the
    same line numbers; a join, since pairing by position runs on one thread)."""
    return (
        f"SELECT t.*, l.h AS _line_hash FROM ({query}) t "
        f"LEFT JOIN ({line_numbers_sql()}) l ON l.ln = t._line_number"
    )


def _with_changed_line(query: str) -> str:
    """Each row of the changed lines' file with its line's number in the export's file
    and its hash."""
    return (
        f"SELECT t.* REPLACE (c.ln AS _line_number), c.h AS _line_hash FROM ({query}) t "
        f"JOIN ({written_line_numbers_sql()}) c ON c.n = t._line_number"
    )


def _ingest_every_row(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    changed_only: bool,
    lines: int | None,
    keep_parsed: bool = False,
) -> CleanLoad | None:
    """The file parsed whole; each row keeps its line's hash when `_lines` (`lines` of
    them) holds one per row."""
    has_known = table.checks_customers
    loaded = _read_typed(con, folder, path, table)
    if loaded is None:
        return None
    tmp, all_cols, mapping = loaded
    values = _typed_values(table, mapping)
    typed_rows = typed_sql(table, tmp, all_cols, mapping, has_known, None, values)
    unchecked_rows = typed_sql(table, tmp, all_cols, mapping, False, None, values)
    (rows,) = con.execute(f"SELECT count(*) FROM {tmp}").fetchone()
    hashed = lines is not None and lines == rows
    compared = (
        changed_only
        and bool(table.key)
        and find_changes(con, table, folder.export_date, "full", _delivered(table, unchecked_rows))
    )
    checked = _changed_rows(table, typed_rows) if compared else f"({typed_rows}) typed"
    bad = _bad_rows(con, table, checked, mapping)
    if not bad and table.key:
        bad = _duplicate_keys(con, table, tmp, mapping)
    if bad:
        _drop(con, tmp)
        return None
    if keep_parsed:
        _keep_parsed(con, table, folder.export_date, unchecked_rows)
    if compared and hashed:
        # a new release or header: the unchanged versions get tonight's line hashes
        parsed = _delivered(table, _with_line_hash(unchecked_rows), "_line_hash")
        give_line_hashes(con, table, folder.export_date, parsed)
    stored_rows = _with_line_hash(typed_rows) if hashed else typed_rows
    source = _changed_rows(table, stored_rows) if compared else f"({stored_rows}) typed"
    # The changed rows are few: sorted, they keep the file's order whatever the join did.
    order = " ORDER BY _line_number" if compared else ""
    # A table's first export: every row is a new version, so it is written to raw once
    # instead of to the incoming rows and then copied (~7 s of a 1M night 1).  Not
    # compared = raw holds no version before it (`find_changes`), and none after it.
    direct = (
        changed_only
        and bool(table.key)
        and not compared
        and not has_later_versions(con, table, folder.export_date)
    )
    into = f"raw.{quote_ident(table.name)}" if direct else INCOMING
    con.execute(
        insert_raw_sql(table, folder.export_date, source, order, line_hash=hashed, into=into)
    )
    _drop(con, tmp)
    return CleanLoad(rows, compared, stored=direct)


def _ingest_changed_lines(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    signature: str,
    lines: int,
    keep_parsed: bool = False,
) -> CleanLoad | None:
    """A full export whose unchanged lines are known by their hash (pipelines/ingest/
    lines.py): only the other lines are parsed, checked and compared.  None (nothing
    written to the incoming rows) where the whole file must be parsed instead."""
    day = folder.export_date
    split = split_lines(con, table, day, lines)
    if split is None:
        return None
    with scratch_file(con, table) as out:
        write_changed_lines(con, path, signature, out)
        if not read_written_lines(con, out, signature, split):
            return None
        loaded = _read_typed(con, folder, out, table)
    if loaded is None:
        return None
    tmp, all_cols, mapping = loaded
    values = _typed_values(table, mapping)
    typed_rows = _with_changed_line(
        typed_sql(table, tmp, all_cols, mapping, table.checks_customers, None, values)
    )
    unchecked_rows = typed_sql(table, tmp, all_cols, mapping, False, None, values)
    parsed = _delivered(table, _with_changed_line(unchecked_rows), "_line_hash")
    dups = _duplicate_keys(con, table, tmp, mapping) + keys_delivered_twice(
        con, table, day, parsed, LINES
    )
    if dups:
        _drop(con, tmp)
        return None
    find_line_changes(con, table, day, parsed, LINES)
    changed = _changed_rows(table, typed_rows)
    if _bad_rows(con, table, changed, mapping):
        _drop(con, tmp, "_diff", "_returned")
        return None
    if keep_parsed:
        _keep_parsed(con, table, day, unchecked_rows)
    give_line_hashes(con, table, day, parsed)
    con.execute(insert_raw_sql(table, day, changed, " ORDER BY _line_number", line_hash=True))
    _drop(con, tmp)
    return CleanLoad(split.lines, True)
