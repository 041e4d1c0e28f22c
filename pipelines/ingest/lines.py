"""Unchanged lines of a full export, found without parsing them.

A nightly full export re-delivers nearly every record as the same line of text.  Parsing,
typing and comparing every row to find the few that changed was most of a night's ingest
at 1M customers (orders: 13.6 s of 31.5 s); reading each line as one text value and
hashing it costs ~1 s for the same file.  So each version of a keyed table stored from
a full export's file keeps `_line_hash`: DuckDB's `hash()` of the line it was read from,
with the *line signature* (the file's header line, the DuckDB version, the table's
columns and the source of the code that turns text into values, `line_signature`).

The same line under the same signature is the same record: same key, same contract
columns.  So a night finds a full export's unchanged records as the lines whose hash an
effective version holds (`split_lines`), writes only the other lines (with the header)
to a file of their own in the store's private temp folder, and parses, checks and
compares those as any file (`clean.ingest_clean_csv`).  Versions keep their hash:

- a new version gets the hash of its line;
- a delivered record that was parsed and found unchanged (its line changed but not its
  contract columns, e.g. another number format, or its version came from a night
  without hashes) gives its line's hash to its effective version (`give_line_hashes`),
  so after a new release (another signature) or a new header, one night parses every
  line and the next does not.

Where it applies: a keyed table of a full export on the clean path, dated after every
stored version (a late export compares every row), whose file has no blank line and no
line with an odd number of quote characters (then every record is exactly one line, for
the line reader and the CSV reader alike), with no two equal lines, and where at least
`MIN_UNCHANGED_SHARE` of the lines are unchanged.  A changed line that is not clean, or a
key delivered both by an unchanged and by a changed line, sends the file to the full
path, which says which rows and why.  Rows, quarantine and refusals are the full path's.

A changed line is taken for unchanged only if its 64-bit hash equals the stored hash of
another record whose own line the file lacks: about 5e-13 per changed line at 9M stored
lines (2e-8 a night for 45k changed lines).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from pipelines.ingest.versions import effective_filter, has_later_versions, hash_signature
from pipelines.schemas import Table
from pipelines.sql import quote_ident, sql_literal

LINES = "_lines"  # (h) per data line of the file, in file order
CHANGED = "_changed_lines"  # (ln, h) of the lines no effective version holds
STORED = "_stored_line_hashes"  # (h) of the effective versions
WRITTEN = "_written_lines"  # (h) per line of the changed lines' file, in its order
# Below this share of unchanged lines, parsing the whole file is as cheap.
MIN_UNCHANGED_SHARE = 0.5
# A delimiter no contract file uses: each line is read as one value.
_LINE_DELIMITER = "\x1f"


# The modules that turn a line into stored values (pipelines/ingest/, then pipelines/).
_READING_CODE = ("casting.py", "clean.py", "reading.py", "rules.py", "sql.py", "versions.py")
_SCHEMA_CODE = "schemas.py"


@functools.cache
def _code_fingerprint() -> str:
    """The source of the modules that turn a line into stored values: a change to any of
    them gives every line another hash."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for path in [*(here / name for name in _READING_CODE), here.parent / _SCHEMA_CODE]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def line_signature(table: Table, path: Path) -> str:
    """What a line's hash is taken with: the header line, DuckDB, columns and code."""
    with path.open("rb") as fh:
        header = fh.readline().rstrip(b"\r\n").decode("utf-8", "replace")
    return f"{hash_signature(table)}|{_code_fingerprint()}|{header}"


_REJECTS = "_line_rejects"


def lines_sql(path: Path, rejects: bool = False) -> str:
    """The data lines of a CSV file, each as one text value `line` (NULL when blank).
    With `rejects`, a line the reader cannot take goes to the table `_line_rejects`
    instead of failing the statement (and with it the export's transaction)."""
    options = (
        f", store_rejects = true, rejects_table = {sql_literal(_REJECTS)}, "
        f"rejects_scan = {sql_literal(_REJECTS + '_scan')}"
        if rejects
        else ""
    )
    return (
        f"read_csv({sql_literal(str(path))}, header = true, columns = {{'line': 'VARCHAR'}}, "
        f"delim = {sql_literal(_LINE_DELIMITER)}, quote = '', escape = '', strict_mode = true"
        f"{options})"
    )


def hash_sql(signature: str) -> str:
    """A line's hash: of the line and of the signature (hashed once, a constant)."""
    return f"hash(line, hash({sql_literal(signature)}))"


def read_line_hashes(
    con: duckdb.DuckDBPyConnection, path: Path, signature: str, into: str = LINES
) -> int | None:
    """Temp table `into` (h): the hash of each data line, in file order; returns the lines.

    None (nothing left) when a record may span lines or a line is blank: a line with an
    odd number of quote characters, a blank line, or a line the reader cannot take."""
    odd = "(length(line) - length(replace(line, '\"', ''))) % 2 = 1"
    h = hash_sql(signature)
    # most lines have no quote: the cheap test first
    line_hash = (
        f"CASE WHEN line IS NULL THEN NULL WHEN NOT contains(line, '\"') THEN {h} "
        f"WHEN {odd} THEN NULL ELSE {h} END"
    )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT {line_hash} AS h "
            f"FROM {lines_sql(path, rejects=True)}"
        )
        count, split_lines = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE h IS NULL) FROM {into}"
        ).fetchone()
        (rejected,) = con.execute(f"SELECT count(*) FROM {_REJECTS}").fetchone()
    except duckdb.BinderException:  # e.g. an empty file: the CSV reader says why
        count, split_lines, rejected = 0, 1, 0
    for table in (_REJECTS, _REJECTS + "_scan"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    if split_lines or rejected:
        con.execute(f"DROP TABLE IF EXISTS {into}")
        return None
    return count


def line_numbers_sql() -> str:
    """(ln, h) of `_lines`: each line's number in the file (header = 1)."""
    return f"SELECT rowid - (SELECT min(rowid) FROM {LINES}) + 2 AS ln, h FROM {LINES}"


def forget_line_hashes(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """No version of the table is known by its line any more: each is parsed again the
    next time it is delivered (and given its hash back then)."""
    con.execute(f"UPDATE raw.{quote_ident(table.name)} SET _line_hash = NULL")


def drop_lines(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the line tables; after a failed statement (a file the reader refused), the
    export's transaction is aborted and its rollback drops them."""
    try:
        for name in (LINES, CHANGED, STORED, WRITTEN):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    except duckdb.TransactionException:
        pass


@dataclass(frozen=True)
class Split:
    """A file's lines: all of them, and how many an effective version holds."""

    lines: int
    unchanged: int

    @property
    def changed(self) -> int:
        return self.lines - self.unchanged


def split_lines(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date, lines: int
) -> Split | None:
    """Temp table `_changed_lines` (ln, h): the lines of `_lines` that no effective version
    holds.  None (nothing created) where the unchanged lines cannot be
    trusted or are too few (module docstring)."""
    if not table.key or has_later_versions(con, table, export_date):
        return None
    raw = f"raw.{quote_ident(table.name)}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {STORED} AS SELECT _line_hash AS h FROM {raw} "
        f"WHERE {effective_filter(export_date)} AND _line_hash IS NOT NULL"
    )
    (held,) = con.execute(
        f"SELECT count(*) FROM {STORED} WHERE h IN (SELECT h FROM {LINES})"
    ).fetchone()
    if held < MIN_UNCHANGED_SHARE * lines:  # e.g. the table's first export
        con.execute(f"DROP TABLE {STORED}")
        return None
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CHANGED} AS SELECT ln, h FROM ({line_numbers_sql()}) "
        f"WHERE h NOT IN (SELECT h FROM {STORED})"
    )
    (changed,) = con.execute(f"SELECT count(*) FROM {CHANGED}").fetchone()
    unchanged = lines - changed
    # held < unchanged: two equal lines (one key twice), which the full path quarantines
    if held != unchanged or unchanged < MIN_UNCHANGED_SHARE * lines:
        for name in (STORED, CHANGED):
            con.execute(f"DROP TABLE {name}")
        return None
    return Split(lines, unchanged)


def write_changed_lines(
    con: duckdb.DuckDBPyConnection, path: Path, signature: str, out: Path
) -> None:
    """The header and the changed lines of `path` as the CSV file `out`."""
    body = out.with_name(out.name + ".body")
    con.execute(
        f"COPY (SELECT line FROM {lines_sql(path)} "
        f"WHERE {hash_sql(signature)} NOT IN (SELECT h FROM {STORED})) "
        f"TO {sql_literal(str(body))} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', "
        f"DELIMITER {sql_literal(_LINE_DELIMITER)})"
    )
    with path.open("rb") as src, out.open("wb") as dst:
        dst.write(src.readline().rstrip(b"\r\n") + b"\n")
        try:
            with body.open("rb") as rest:
                shutil.copyfileobj(rest, dst)
        finally:
            body.unlink(missing_ok=True)


def give_line_hashes(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date, delivered: str
) -> int:
    """Give each effective version the hash of the line that delivered it unchanged.

    `delivered`: a query of the keys, `_row_hash` and `_line_hash` of parsed rows.
    Returns the versions updated (0 on a usual night)."""
    raw = f"raw.{quote_ident(table.name)}"
    keys = [quote_ident(k) for k in table.key]
    on = " AND ".join(f"{raw}.{k} = d.{k}" for k in keys)
    (rows,) = con.execute(
        f"UPDATE {raw} SET _line_hash = d._line_hash FROM ({delivered}) d "
        f"WHERE {on} AND {effective_filter(export_date, raw)} "
        f"AND {raw}._row_hash = d._row_hash AND d._line_hash IS NOT NULL "
        f"AND {raw}._line_hash IS DISTINCT FROM d._line_hash"
    ).fetchone()
    return rows


@contextmanager
def scratch_file(con: duckdb.DuckDBPyConnection, table: Table) -> Iterator[Path]:
    """A new file for the changed lines, removed afterwards: in the store's own temp folder
    (DuckDB's, next to the store and private like it), or in a private new folder for a
    store without one (in memory: DuckDB names a folder relative to the working one)."""
    (folder,) = con.execute("SELECT current_setting('temp_directory')").fetchone()
    own = None
    if folder and Path(folder).is_absolute():
        Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        folder = own = tempfile.mkdtemp(prefix="changed-lines-")
    handle, name = tempfile.mkstemp(prefix=f"changed-{table.name}-", suffix=".csv", dir=folder)
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)


def read_written_lines(
    con: duckdb.DuckDBPyConnection, out: Path, signature: str, split: Split
) -> bool:
    """Temp table `_written_lines` (h): the hash of each line of the file `out`, in its
    order; whether they are exactly the lines of `_changed_lines` (DuckDB writes them in
    its own order: rows pair with their line by hash, `written_line_numbers_sql`)."""
    count = read_line_hashes(con, out, signature, into=WRITTEN)
    if count != split.changed:
        return False
    (strangers,) = con.execute(
        f"SELECT count(*) FROM {WRITTEN} WHERE h NOT IN (SELECT h FROM {CHANGED})"
    ).fetchone()
    return strangers == 0


def written_line_numbers_sql() -> str:
    """(n, ln, h) per line of the changed lines' file: its number there (header = 1), its
    number in the export's file, its hash."""
    return (
        f"SELECT w.rowid - (SELECT min(rowid) FROM {WRITTEN}) + 2 AS n, c.ln, c.h "
        f"FROM {WRITTEN} w JOIN {CHANGED} c ON c.h = w.h"
    )
