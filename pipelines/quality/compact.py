"""Compact frames: DuckDB pre-selects the rows that may break an expectation."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from pipelines.quality.frames import as_date, mart_frame_sql, query_frame, raw_frame_sql
from pipelines.quality.suites import suite_spec
from pipelines.sql import quote_ident, sql_literal

# At a million customers a suite's frame is millions of rows, and GX on pandas costs
# seconds and gigabytes per suite.  Every expectation of the large tables' suites is a
# row-level ("map") rule, a column-set rule, or uniqueness: its outcome (success,
# unexpected_count, the first unexpected values and the sampled rows) depends only on the
# rows that break it.  So DuckDB first keeps the rows that *may* break at least one
# expectation -- a superset, from a conservative SQL translation of each expectation -- in
# the frame's order, and GX validates that compact frame; element_count is the exact row
# count from SQL.  GX stays the rule engine (it decides on every candidate row), and the
# outcome is the one GX gives on the whole frame (tests/test_perf_quality.py checks this).
# A suite with an expectation that has no translation (sums, distinct sets, compound
# keys, ...) is validated on the whole frame, as are frames below COMPACT_MIN_ROWS rows.

# The default of GX_COMPACT_MIN_ROWS (the checks get the setting from the warehouse resource).
COMPACT_MIN_ROWS = 100_000
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "REAL",
)


def _is_numeric(typ: str) -> bool:
    return typ.upper().startswith(_NUMERIC)


def _sql_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return repr(float(value))


def _may_fail_sql(
    exp: Mapping[str, Any], types: Mapping[str, str], dup_table: Any, mismatch_table: Any
) -> str | None:
    """SQL true for every row on which GX could find `exp` broken (more is allowed, never
    less); "FALSE" for table-level rules that depend on no row; None when untranslatable.

    ``dup_table(col)`` / ``mismatch_table(col, regex)`` name temp tables (column ``v``) of
    the values of ``col`` that repeat / do not fully match ``regex``: computed once per
    column (a grouping, or a regex per distinct value) instead of once per row.
    """
    etype, kw = exp["type"], exp.get("kwargs", {})
    if etype == "expect_table_columns_to_match_set":
        return "FALSE"
    col = kw.get("column")
    if col is not None and col not in types:
        return "FALSE"  # a missing column fails the same way on any rows
    c = quote_ident(col) if col is not None else None
    if etype == "expect_column_values_to_not_be_null":
        nan = f" OR isnan(CAST({c} AS DOUBLE))" if _is_numeric(types[col]) else ""
        return f"({c} IS NULL{nan})"
    if etype == "expect_column_values_to_be_unique":
        # values of `col` that occur more than once: temp table (see compact_frame)
        return f"({c} IS NOT NULL AND {c} IN (SELECT v FROM {dup_table(col)}))"
    if etype == "expect_column_values_to_be_between":
        if not _is_numeric(types[col]) or kw.get("parse_strings_as_datetimes"):
            return None
        lo, hi = kw.get("min_value"), kw.get("max_value")
        conds = []
        for bound, strict, op_strict, op in (
            (lo, "strict_min", ">", ">="),
            (hi, "strict_max", "<", "<="),
        ):
            if bound is None:
                continue
            num = _sql_number(bound)
            if num is None:
                return None
            conds.append(f"CAST({c} AS DOUBLE) {op_strict if kw.get(strict) else op} {num}")
        if not conds:
            return "FALSE"
        return f"({c} IS NOT NULL AND NOT ({' AND '.join(conds)}))"
    if etype == "expect_column_values_to_be_in_set":
        values = kw.get("value_set") or []
        if all(isinstance(v, bool) for v in values):
            lits = [("true" if v else "false") for v in values]
            return (
                f"({c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN "
                f"({', '.join(repr(v) for v in lits) or 'NULL'}))"
            )
        if all(isinstance(v, str) for v in values):
            lits = ", ".join(sql_literal(v) for v in values)
            return f"({c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({lits or 'NULL'}))"
        return None
    if etype == "expect_column_values_to_match_regex":
        regex = kw.get("regex")
        if not isinstance(regex, str):
            return None
        # distinct values that do not fully match: temp table (see compact_frame)
        bad = mismatch_table(col, regex)
        return f"({c} IS NOT NULL AND CAST({c} AS VARCHAR) IN (SELECT v FROM {bad}))"
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw.get("column_A"), kw.get("column_B")
        if a not in types or b not in types:
            return "FALSE"
        if not (_is_numeric(types[a]) and _is_numeric(types[b])):
            return None
        op = ">=" if kw.get("or_equal") else ">"
        qa, qb = quote_ident(a), quote_ident(b)
        cmp = f"coalesce(CAST({qa} AS DOUBLE) {op} CAST({qb} AS DOUBLE), FALSE)"
        if kw.get("ignore_row_if") == "either_value_is_missing":
            return f"({qa} IS NOT NULL AND {qb} IS NOT NULL AND NOT {cmp})"
        return f"NOT {cmp}"
    return None


@dataclass
class Frame:
    """What a suite is validated on: the frame and the row count it stands for."""

    df: pd.DataFrame
    rows: int
    compact: bool = False


def compact_frame(
    con: duckdb.DuckDBPyConnection,
    suite_name: str,
    items: list[str],
    source: str,
    order: str,
    params: Mapping[str, Any],
    min_rows: int | None = None,
) -> Frame:
    """The suite's frame, compacted to the rows that may break an expectation when the
    table is large and every expectation is translatable (see above)."""
    min_rows = COMPACT_MIN_ROWS if min_rows is None else min_rows
    (rows,) = con.execute(f"SELECT count(*) {source}", params).fetchone()
    if rows < min_rows or not items:
        return Frame(query_frame(con, items, source, order, params), rows)
    body = f"SELECT {', '.join(items)}" + (f", {order} AS __order" if order else "")
    body += f" {source}"
    types = {
        name: typ
        for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM ({body})", params).fetchall()
    }
    temps: list[str] = []
    # One column's values alone: the per-column tables need no other (derived) column.
    by_alias = {item.rsplit(" AS ", 1)[1]: item for item in items}

    def narrow(col: str) -> str:
        return f"SELECT {by_alias[quote_ident(col)]} {source}"

    def dup_table(col: str) -> str:
        name = f"_gx_dups_{len(temps)}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {quote_ident(col)} AS v "
            f"FROM ({narrow(col)}) GROUP BY 1 HAVING count(*) > 1",
            params,
        )
        temps.append(name)
        return name

    def mismatch_table(col: str, regex: str) -> str:
        name, pattern = f"_gx_mismatch_{len(temps)}", sql_literal(regex)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT v FROM (SELECT DISTINCT "
            f"CAST({quote_ident(col)} AS VARCHAR) AS v FROM ({narrow(col)})) "
            f"WHERE v IS NOT NULL AND NOT coalesce(regexp_full_match(v, {pattern}), FALSE)",
            params,
        )
        temps.append(name)
        return name

    try:
        preds = []
        for exp in suite_spec(suite_name)["expectations"]:
            pred = _may_fail_sql(exp, types, dup_table, mismatch_table)
            if pred is None:
                return Frame(query_frame(con, items, source, order, params), rows)
            if pred != "FALSE":
                preds.append(pred)
        where = " OR ".join(preds) or "FALSE"
        sql = f"SELECT * FROM ({body}) WHERE {where}"
        sql += " ORDER BY __order" if order else ""
        df = con.execute(sql, params).df().drop(columns=["__order"], errors="ignore")
    finally:
        for name in temps:
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return Frame(df.reset_index(drop=True), rows, compact=True)


def raw_check_frame(
    con: duckdb.DuckDBPyConnection,
    table: str,
    export_date: dt.date | str,
    min_rows: int | None = None,
) -> Frame:
    """`frame_for_raw_check`, compacted when large (what the asset check validates)."""
    items, source, order = raw_frame_sql(con, table)
    return compact_frame(
        con, f"raw_{table}", items, source, order, {"export_date": as_date(export_date)}, min_rows
    )


def mart_check_frame(
    con: duckdb.DuckDBPyConnection, mart: str, min_rows: int | None = None
) -> Frame:
    """`frame_for_mart_check`, compacted when large (what the asset check validates)."""
    items, source, order = mart_frame_sql(con, mart)
    return compact_frame(con, f"marts_{mart}", items, source, order, {}, min_rows)
