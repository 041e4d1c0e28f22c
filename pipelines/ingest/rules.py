"""Row checks and quarantine rules: the one checked SELECT per table and its helper tables.

The rows checked come from one of two kinds of temp table.  A file read as text (`reading`)
has the file's own columns; its row order gives the line number and its name the lineage.
Rows mapped from vendor files (`pipelines.sources`) already have contract column names and
carry their own lineage: `_seq` (their order: the row identity duplicates are ranked by),
`_line_number`, `_source_system`, `_source_file`, `_extra`, `_raw_row` (the vendor's row)
and `_reject` (a reason the adapter could not map the row, tried before every other rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from pipelines.ingest.casting import typed_expr
from pipelines.ingest.sql import line_number_sql, text_expr
from pipelines.ingest.versions import INCOMING, row_hash_of
from pipelines.schemas import CONTRACT_SOURCE, Table
from pipelines.sql import quote_ident, sql_literal

# Columns of a mapped temp table besides the contract columns.
MAPPED_META_COLUMNS = (
    "_seq",
    "_line_number",
    "_source_system",
    "_source_file",
    "_extra",
    "_raw_row",
    "_reject",
)


@dataclass(frozen=True)
class Lineage:
    """Where the rows of a file read as text come from (`None` file: a mapped temp table,
    whose rows carry their own lineage columns)."""

    file: str | None
    system: str = CONTRACT_SOURCE

    @property
    def mapped(self) -> bool:
        return self.file is None


def row_id_sql(tmp: str, lineage: Lineage | None) -> str:
    """The expression identifying a row and giving its order (duplicates keep the first)."""
    return "s._seq" if lineage is not None and lineage.mapped else line_number_sql(tmp)


def row_checks(
    table: Table,
    has_known_customers: bool,
    unknown: dict[str, str] | None = None,
    duplicates: bool = True,
) -> list[tuple[str, str, str]]:
    """(condition, column, reason) in the order they are tried; the first match wins:
    each column's rules in column order, the table's `rules` (schemas.py), unknown
    customer, duplicate key.

    ``unknown``: customer-reference column -> temp table of the lines whose customer is
    unknown (`unknown_customer_lines`); a column left out has no unknown customer, so its
    check can never match and is left out too.
    """
    checks: list[tuple[str, str, str]] = []
    for col in table.columns:
        t, v = f"t_{col.name}", f"v_{col.name}"
        if col.required:
            checks.append((f"{t} IS NULL", col.name, "missing required value"))
        checks.append((f"{t} IS NOT NULL AND {v} IS NULL", col.name, f"unparseable {col.type}"))
        if col.allowed is not None:
            allowed = ", ".join(sql_literal(a) for a in col.allowed)
            checks.append(
                (f"{v} IS NOT NULL AND {v} NOT IN ({allowed})", col.name, "value not allowed")
            )
        if col.min_value is not None:
            op = ">" if col.type == "decimal" else ">="
            checks.append(
                (
                    f"{v} IS NOT NULL AND NOT ({v} {op} {col.min_value})",
                    col.name,
                    f"out of range (must be {op} {col.min_value:g})",
                )
            )
        if col.max_value is not None:
            checks.append(
                (
                    f"{v} IS NOT NULL AND {v} > {col.max_value}",
                    col.name,
                    f"out of range (must be <= {col.max_value:g})",
                )
            )
    for rule in table.rules:
        checks.append((rule.broken_sql(lambda c: f"v_{c}"), rule.column, rule.reason))
    if has_known_customers:
        for col in table.columns:
            if col.customer_ref and (unknown is None or col.name in unknown):
                checks.append(
                    (
                        f"v_{col.name} IS NOT NULL AND kc_{col.name}_id IS NULL",
                        col.name,
                        "unknown customer",
                    )
                )
    if table.key and duplicates:
        checks.append(("_dup_rank > 1", table.key[0], "duplicate key within export"))
    return checks


def duplicate_ranks(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    tmp: str,
    mapping: dict[str, str],
    lineage: Lineage | None = None,
) -> str | None:
    """Temp table (_row, _dup_rank) of the rows whose key occurs more than once, ranked by
    row order (`row_id_sql`); None when the key is unique (the usual case, no window at all).

    Ranking only the duplicated keys keeps the window (a sort) off the other rows.
    """
    if not table.key:
        return None
    keys = [f"{text_expr(mapping.get(k))} AS k{i}" for i, k in enumerate(table.key)]
    knames = [f"k{i}" for i in range(len(table.key))]
    name = f"_dups_{table.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS "
        f"WITH k AS (SELECT {row_id_sql(tmp, lineage)} AS _row, {', '.join(keys)} "
        f"FROM {tmp} s), "
        f"d AS (SELECT {', '.join(knames)} FROM k "
        f"WHERE {' AND '.join(k + ' IS NOT NULL' for k in knames)} "
        f"GROUP BY ALL HAVING count(*) > 1) "
        f"SELECT _row, row_number() OVER (PARTITION BY {', '.join(knames)} "
        f"ORDER BY _row) AS _dup_rank FROM k SEMI JOIN d USING ({', '.join(knames)})"
    )
    if con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == 0:
        con.execute(f"DROP TABLE {name}")
        return None
    return name


def unknown_customer_lines(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    tmp: str,
    mapping: dict[str, str],
    lineage: Lineage | None = None,
) -> dict[str, str]:
    """Customer-reference column -> temp table (_row) of the rows whose customer id is not
    a known customer, for the columns that have any (usually none).

    Found with one narrow anti-join, so the checked query joins nothing in the usual case
    and keeps the file's row order (the raw insert then needs no sort).
    """
    found: dict[str, str] = {}
    for col in table.columns:
        if not col.customer_ref:
            continue
        name = f"_unknown_{table.name}_{col.name}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT k._row FROM ("
            f"SELECT {row_id_sql(tmp, lineage)} AS _row, "
            f"{text_expr(mapping.get(col.name))} AS cid FROM {tmp} s) k "
            "ANTI JOIN _known_customers c ON c.customer_id = k.cid WHERE k.cid IS NOT NULL"
        )
        if con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]:
            found[col.name] = name
        else:
            con.execute(f"DROP TABLE {name}")
    return found


def typed_sql(
    table: Table,
    tmp: str,
    all_cols: list[str],
    mapping: dict[str, str],
    has_known: bool,
    unknown: dict[str, str] | None = None,
    values: dict[str, tuple[str, str]] | None = None,
    lineage: Lineage | None = None,
) -> str:
    """SELECT over the file's temp table: row id `_row`, line number, per contract column
    its trimmed text `t_<col>` and typed value `v_<col>`, the raw columns `_r<i>`,
    `_extra`, and the customer-check columns (plus the lineage columns of mapped rows).

    ``values``: column -> (text, typed) expressions that replace the text path's for the
    columns the CSV reader already typed (`clean.load_clean_csv`).
    """
    values = values or {}
    mapped = lineage is not None and lineage.mapped
    row_id = row_id_sql(tmp, lineage)
    txt = {c.name: text_expr(mapping.get(c.name)) for c in table.columns}
    line = "s._line_number" if mapped else line_number_sql(tmp)
    select = [f"{row_id} AS _row", f"{line} AS _line_number"]
    for c in table.columns:
        if c.name in values:
            txt[c.name] = values[c.name][0]
        v = values[c.name][1] if c.name in values else typed_expr(c, txt[c.name])
        select.append(f"{txt[c.name]} AS t_{c.name}")
        select.append(f"{v} AS v_{c.name}")
    if mapped:
        select += [
            "s._extra AS _extra",
            "s._raw_row AS _raw_row_in",
            "s._reject AS _reject",
            "s._source_system AS _source_system",
            "s._source_file AS _source_file",
        ]
    else:
        select.extend(f"s.{quote_ident(c)} AS _r{i}" for i, c in enumerate(all_cols))
        known = set(mapping.values())
        extra = [c for c in all_cols if c not in known]
        if extra:
            pack = ", ".join(
                f"{quote_ident(c.strip())} := CAST(s.{quote_ident(c)} AS VARCHAR)" for c in extra
            )
            select.append(f"to_json(struct_pack({pack})) AS _extra")
        else:
            select.append("CAST(NULL AS JSON) AS _extra")
    joins = ""
    if has_known:
        for c in table.columns:
            if not c.customer_ref:
                continue
            if unknown is None:
                joins += (
                    f" LEFT JOIN _known_customers kc_{c.name}"
                    f" ON kc_{c.name}.customer_id = {txt[c.name]}"
                )
                select.append(f"kc_{c.name}.customer_id AS kc_{c.name}_id")
            elif c.name in unknown:
                # NULL for the unknown rows, the id otherwise (what the join would give)
                joins += f" LEFT JOIN {unknown[c.name]} u_{c.name} ON u_{c.name}._row = {row_id}"
                select.append(
                    f"CASE WHEN u_{c.name}._row IS NULL THEN {txt[c.name]} END AS kc_{c.name}_id"
                )
    return f"SELECT {', '.join(select)} FROM {tmp} s{joins}"


def checked_sql(
    table: Table,
    tmp: str,
    all_cols: list[str],
    mapping: dict[str, str],
    has_known: bool,
    dups: str | None = None,
    unknown: dict[str, str] | None = None,
    lineage: Lineage | None = None,
) -> str:
    """One SELECT giving typed values, the first problem of each row, and the raw row.

    Only what the inserts need is selected (row id, typed values, line number, problem,
    _extra, the customer a bad row names; the lineage of mapped rows); the raw row's JSON
    is built for bad rows only.  `dups` is the table of `duplicate_ranks` (None: every key
    is unique); `unknown` the tables of `unknown_customer_lines` (None: join
    _known_customers here instead).
    """
    mapped = lineage is not None and lineage.mapped
    typed = typed_sql(table, tmp, all_cols, mapping, has_known, unknown, lineage=lineage)
    checks = row_checks(table, has_known, unknown)
    if dups is None:
        ranked = "SELECT *, 1 AS _dup_rank FROM typed"
    else:
        ranked = (
            "SELECT typed.*, coalesce(d._dup_rank, 1) AS _dup_rank FROM typed "
            f"LEFT JOIN {dups} d USING (_row)"
        )
    cases = " ".join(
        f"WHEN {cond} THEN "
        f"{{'column_name': {sql_literal(col)}, 'value': t_{col}, 'reason': {sql_literal(reason)}}}"
        for cond, col, reason in checks
    )
    if mapped:
        # The adapter's own reason comes first: such a row has no trustworthy values.
        cases = (
            "WHEN _reject IS NOT NULL THEN {'column_name': CAST(NULL AS VARCHAR), "
            f"'value': CAST(NULL AS VARCHAR), 'reason': _reject}} {cases}"
        )
        raw_row = "_raw_row_in"
        lineage_cols = ", _source_system, _source_file"
    else:
        raw_pack = ", ".join(
            f"{quote_ident(c)} := CAST(_r{i} AS VARCHAR)" for i, c in enumerate(all_cols)
        )
        raw_row = f"to_json(struct_pack({raw_pack}))"
        lineage_cols = ""
    who = table.customer_column
    customer = f"t_{who}" if who is not None else "CAST(NULL AS VARCHAR)"
    vals = ", ".join(f"v_{c.name}" for c in table.columns)
    return (
        f"WITH typed AS ({typed}), ranked AS ({ranked}), "
        f"checked AS (SELECT *, CASE {cases} END AS _problem FROM ranked) "
        f"SELECT _row, _line_number, {vals}, _extra, _problem, "
        f"CASE WHEN _problem IS NOT NULL THEN {raw_row} END AS _raw_row, "
        f"CASE WHEN _problem IS NOT NULL THEN {customer} END AS _customer{lineage_cols} "
        "FROM checked"
    )


def insert_raw_sql(
    table: Table,
    export_date: date,
    source: str,
    tail: str = "",
    lineage: Lineage | None = None,
    line_hash: bool = False,
    into: str = INCOMING,
) -> str:
    """INSERT of `v_<col>`, `_line_number`, `_extra`, lineage and `_row_hash` of the rows
    of `source` into the export's incoming rows (shaped as raw.<table>, tagged with the
    export date; both ingest paths write through this, and ingest/versions.py stores what
    is new in raw).

    ``lineage``: a file's name and system, or mapped rows (their own lineage columns);
    None takes them from the session variables `ingest_source_system`/`_file`, which
    `tables.ingest_table` sets for the clean path.  ``line_hash``: `source` has the
    `_line_hash` of each row (pipelines/ingest/lines.py); else it stays NULL.  ``into``:
    raw.<table> itself for a table's first export on the clean path (`clean`).
    """
    cols = ", ".join(quote_ident(c.name) for c in table.columns)
    vals = ", ".join(f"v_{c.name}" for c in table.columns)
    if lineage is None:
        source_cols = "getvariable('ingest_source_system'), getvariable('ingest_source_file')"
    elif lineage.mapped:
        source_cols = "_source_system, _source_file"
    else:
        source_cols = f"{sql_literal(lineage.system)}, {sql_literal(lineage.file)}"
    line = ", _line_hash" if line_hash else ""
    return (
        f"INSERT INTO {into} "
        f"({cols}, _export_date, _line_number, _extra, _source_system, _source_file, _row_hash"
        f"{line}) "
        f"SELECT {vals}, DATE {sql_literal(export_date.isoformat())}, _line_number, _extra, "
        f"{source_cols}, {row_hash_of(table, lambda c: f'v_{c}')}{line} FROM {source}{tail}"
    )
