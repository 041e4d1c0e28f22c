"""Compact frames: SQL pre-selects the rows that may break an expectation.

The selection is written once and runs in the store (DuckDB) or, for the mart checks on the
Spark engine, in Spark SQL (pipelines/quality/spark.py): the SQL differs only by its
`Dialect`, the queries only by the `FrameEngine` that runs them."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pandas as pd

from pipelines.quality.dialect import DUCKDB, Dialect
from pipelines.quality.frames import (
    as_date,
    check_mart,
    raw_frame_sql,
    table_frame_sql,
    whole_frame,
)
from pipelines.quality.suites import suite_spec

# At a million customers a suite's frame is millions of rows, and GX on pandas costs
# seconds and gigabytes per suite.  Every expectation of the large tables' suites is a
# row-level ("map") rule, a column-set rule, or uniqueness: its outcome (success,
# unexpected_count, the first unexpected values and the sampled rows) depends only on the
# rows that break it.  So SQL (DuckDB, or Spark for a mart on the Spark engine) first keeps
# the rows that *may* break at least one expectation -- a superset, from a conservative SQL
# translation of each expectation -- in the frame's order, and GX validates that compact
# frame; element_count is the exact row count from SQL.  GX stays the rule engine (it
# decides on every candidate row), and the outcome is the one GX gives on the whole frame
# (tests/test_perf_quality.py checks this, tests/spark/test_quality_on_spark.py that Spark
# selects the frame DuckDB selects).
# A suite with an expectation that has no translation (sums, distinct sets, compound
# keys, ...) is validated on the whole frame, as are frames below COMPACT_MIN_ROWS rows.

# The default of GX_COMPACT_MIN_ROWS (the checks get the setting from the warehouse resource).
COMPACT_MIN_ROWS = 100_000
# Numeric type names (without their parameters) of DuckDB's DESCRIBE and of Spark's
# schema (`int`, `bigint`, `double`, `decimal(18,4)`, ...), upper-cased.
_NUMERIC = frozenset(
    {
        *("TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT"),
        *("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"),
        *("FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC"),
        *("BYTE", "SHORT", "LONG"),  # Spark's other names of its integer types
    }
)


def _is_numeric(typ: str) -> bool:
    """A column of this type (either engine's name) can be compared as a DOUBLE."""
    return typ.split("(", 1)[0].strip().upper() in _NUMERIC


def _sql_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return repr(float(value))


def _may_fail_sql(
    exp: Mapping[str, Any],
    types: Mapping[str, str],
    dup_table: Any,
    mismatch_table: Any,
    dialect: Dialect = DUCKDB,
) -> str | None:
    """SQL true for every row on which GX could find `exp` broken (more is allowed, never
    less); "FALSE" for table-level rules that depend on no row; None when untranslatable.

    ``dup_table(col)`` / ``mismatch_table(col, regex)`` name temp tables (column ``v``) of
    the values of ``col`` that repeat / do not fully match ``regex``: computed once per
    column (a grouping, or a regex per distinct value) instead of once per row.
    ``dialect``: the engine the SQL runs in (quoting, string type).
    """
    etype, kw = exp["type"], exp.get("kwargs", {})
    if etype == "expect_table_columns_to_match_set":
        return "FALSE"
    col = kw.get("column")
    if col is not None and col not in types:
        return "FALSE"  # a missing column fails the same way on any rows
    q, string = dialect.quote, dialect.string_type
    c = q(col) if col is not None else None
    if etype == "expect_column_values_to_not_be_null":
        nan = f" OR isnan(CAST({c} AS DOUBLE))" if _is_numeric(types[col]) else ""
        return f"({c} IS NULL{nan})"
    if etype == "expect_column_values_to_be_unique":
        # values of `col` that occur more than once: temp table (see select_frame)
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
                f"({c} IS NOT NULL AND CAST({c} AS {string}) NOT IN "
                f"({', '.join(repr(v) for v in lits) or 'NULL'}))"
            )
        if all(isinstance(v, str) for v in values):
            lits = ", ".join(dialect.literal(v) for v in values)
            return f"({c} IS NOT NULL AND CAST({c} AS {string}) NOT IN ({lits or 'NULL'}))"
        return None
    if etype == "expect_column_values_to_match_regex":
        regex = kw.get("regex")
        if not isinstance(regex, str):
            return None
        # distinct values that do not fully match: temp table (see select_frame)
        bad = mismatch_table(col, regex)
        return f"({c} IS NOT NULL AND CAST({c} AS {string}) IN (SELECT v FROM {bad}))"
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw.get("column_A"), kw.get("column_B")
        if a not in types or b not in types:
            return "FALSE"
        if not (_is_numeric(types[a]) and _is_numeric(types[b])):
            return None
        op = ">=" if kw.get("or_equal") else ">"
        qa, qb = q(a), q(b)
        cmp = f"coalesce(CAST({qa} AS DOUBLE) {op} CAST({qb} AS DOUBLE), FALSE)"
        if kw.get("ignore_row_if") == "either_value_is_missing":
            return f"({qa} IS NOT NULL AND {qb} IS NOT NULL AND NOT {cmp})"
        return f"NOT {cmp}"
    return None


@dataclass
class Frame:
    """What a suite is validated on: the frame, the row count it stands for, and where it
    was selected (`origin`: shown in the check's metadata, e.g. the engine and table)."""

    df: pd.DataFrame
    rows: int
    compact: bool = False
    origin: dict[str, str] = field(default_factory=dict)


class FrameEngine(Protocol):
    """Runs a frame's queries in one engine (DuckDB: `DuckDBFrames`; Spark:
    pipelines/quality/spark.py `SparkFrames`), so `select_frame` is written once."""

    dialect: Dialect

    def count(self, source: str) -> int: ...  # rows of `SELECT count(*) <source>`

    def types(self, select: str) -> dict[str, str]: ...  # column -> type name of a query

    def materialize(self, name: str, select: str) -> None: ...  # a temp table of a query

    def drop(self, name: str) -> None: ...  # the temp table `name`, if it exists

    def frame(self, sql: str) -> pd.DataFrame: ...  # a query's rows, as DuckDB's .df()


class DuckDBFrames:
    """A frame's queries on a DuckDB connection (the store), with the query parameters of
    its FROM clause (a raw frame's ``$export_date``)."""

    dialect = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection, params: Mapping[str, Any]) -> None:
        self.con, self.params = con, params

    def count(self, source: str) -> int:
        return self.con.execute(f"SELECT count(*) {source}", self.params).fetchone()[0]

    def types(self, select: str) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE SELECT * FROM ({select})", self.params).fetchall()
        return {name: typ for name, typ, *_ in rows}

    def materialize(self, name: str, select: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}", self.params)

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql, self.params).df()


def select_frame(
    engine: FrameEngine,
    suite_name: str,
    items: list[str],
    source: str,
    order: list[str],
    min_rows: int | None = None,
) -> Frame:
    """The suite's frame, selected by `engine`, compacted to the rows that may break an
    expectation when the table is large and every expectation is translatable (see
    above); `rows` is the row count the engine counted."""
    min_rows = COMPACT_MIN_ROWS if min_rows is None else min_rows
    rows = engine.count(source)
    if rows < min_rows or not items:
        return Frame(whole_frame(engine.frame, items, source, order), rows)
    q = engine.dialect.quote
    keys = [f"__order_{i}" for i in range(len(order))]
    ordered = [f"{o} AS {k}" for o, k in zip(order, keys, strict=True)]
    body = f"SELECT {', '.join([*items, *ordered])} {source}"
    types = engine.types(body)
    temps: list[str] = []
    # One column's values alone: the per-column tables need no other (derived) column.
    by_alias = {item.rsplit(" AS ", 1)[1]: item for item in items}

    def narrow(col: str) -> str:
        return f"SELECT {by_alias[q(col)]} {source}"

    def dup_table(col: str) -> str:
        name = f"_gx_dups_{len(temps)}"
        temps.append(name)
        engine.materialize(
            name,
            f"SELECT {q(col)} AS v FROM ({narrow(col)}) n GROUP BY {q(col)} HAVING count(*) > 1",
        )
        return name

    def mismatch_table(col: str, regex: str) -> str:
        name, string = f"_gx_mismatch_{len(temps)}", engine.dialect.string_type
        temps.append(name)
        engine.materialize(
            name,
            f"SELECT v FROM (SELECT DISTINCT CAST({q(col)} AS {string}) AS v "
            f"FROM ({narrow(col)}) n) d "
            f"WHERE v IS NOT NULL AND NOT coalesce({engine.dialect.full_match('v', regex)}, FALSE)",
        )
        return name

    try:
        preds = []
        for exp in suite_spec(suite_name)["expectations"]:
            pred = _may_fail_sql(exp, types, dup_table, mismatch_table, engine.dialect)
            if pred is None:
                return Frame(whole_frame(engine.frame, items, source, order), rows)
            if pred != "FALSE":
                preds.append(pred)
        where = " OR ".join(preds) or "FALSE"
        sql = f"SELECT * FROM ({body}) b WHERE {where}"
        sql += f" ORDER BY {', '.join(k + ' NULLS LAST' for k in keys)}" if keys else ""
        df = engine.frame(sql).drop(columns=keys)
    finally:
        for name in temps:
            engine.drop(name)
    return Frame(df.reset_index(drop=True), rows, compact=True)


def compact_frame(
    con: duckdb.DuckDBPyConnection,
    suite_name: str,
    items: list[str],
    source: str,
    order: list[str],
    params: Mapping[str, Any],
    min_rows: int | None = None,
) -> Frame:
    """`select_frame` in the store (DuckDB), ``params`` bound in ``source``."""
    return select_frame(DuckDBFrames(con, params), suite_name, items, source, order, min_rows)


def raw_check_frame(
    con: duckdb.DuckDBPyConnection,
    table: str,
    export_date: dt.date | str,
    min_rows: int | None = None,
) -> Frame:
    """`frame_for_raw_check`, compacted when large (what the asset check validates)."""
    items, source, order = raw_frame_sql(con, table)
    params = {"export_date": as_date(export_date)}
    frame = compact_frame(con, f"raw_{table}", items, source, order, params, min_rows)
    frame.origin = {"frame_engine": "duckdb", "frame_table": f"raw.{table}"}
    return frame


def duckdb_check_frame(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    suite_name: str,
    min_rows: int | None = None,
) -> Frame:
    """`suite_name`'s frame of the store's table `schema.table` (a suite without derived
    columns), compacted when large; the DuckDB twin of pipelines/quality/spark.py
    `spark_check_frame`."""
    items, source, order = table_frame_sql(con, schema, table, suite_name)
    frame = compact_frame(con, suite_name, items, source, order, {}, min_rows)
    frame.origin = {"frame_engine": "duckdb", "frame_table": f"{schema}.{table}"}
    return frame


def mart_check_frame(
    con: duckdb.DuckDBPyConnection, mart: str, min_rows: int | None = None
) -> Frame:
    """`frame_for_mart_check`, compacted when large (what the asset check validates)."""
    return duckdb_check_frame(con, "marts", mart, check_mart(mart), min_rows)
