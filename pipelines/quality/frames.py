"""Frames for raw and mart checks: a suite's columns plus its derived booleans.

Raw frames are DuckDB SQL (raw lives only in the store); a mart frame's SQL is built in
either engine's quoting (`suite_frame_sql`), so on Spark the mart checks select there."""

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import duckdb
import pandas as pd

from pipelines.quality.suites import MART_TABLES, RAW_TABLES, suite_columns, suite_spec
from pipelines.schemas import CUSTOMER_TABLE, RAW_META_COLUMNS, TABLES
from pipelines.sql import quote_ident


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    """lower-cased name -> actual name of a table's columns; LookupError if it is missing."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    if not rows:
        raise LookupError(f"table {schema}.{table} does not exist")
    return {name.lower(): name for (name,) in rows}


def _derived_column(table: str, name: str) -> tuple[str, tuple[str, ...]]:
    """SQL (row alias ``t``, parameter ``$export_date``) of a derived column and its inputs.

    A table's row rules (`schemas.Table.rules`) give the derived columns their
    `check_column` names, so a suite checks the rule ingest quarantines by.
    """
    spec = TABLES[table]
    if name == "_unknown_customer":
        col = next(c.name for c in spec.columns if c.customer_ref)
        ref, key = quote_ident(col), quote_ident(TABLES[CUSTOMER_TABLE].key[0])
        sql = (
            f"(t.{ref} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM raw.{CUSTOMER_TABLE} c "
            f"WHERE c.{key} = t.{ref} AND c._export_date <= $export_date))"
        )
        return sql, (col,)
    if name.endswith("_after_export_date"):
        col = name[1 : -len("_after_export_date")]
        return f"COALESCE(CAST(t.{quote_ident(col)} AS DATE) > $export_date, FALSE)", (col,)
    if name.endswith("_not_first_day"):
        col = name[1 : -len("_not_first_day")]
        return f"COALESCE(dayofmonth(t.{quote_ident(col)}) <> 1, FALSE)", (col,)
    for rule in spec.rules:
        if rule.check_column == name:
            sql = rule.broken_sql(lambda c: f"t.{quote_ident(c)}")
            return f"COALESCE({sql}, FALSE)", rule.inputs
    raise KeyError(f"unknown derived column {name!r} (table {table})")


def _select_list(
    columns: Iterable[str],
    existing: Mapping[str, str],
    derive: Any,
    quote: Callable[[str], str] = quote_ident,
) -> list[str]:
    """SELECT items for the columns a suite needs.

    A column missing from the table is left out, so the suite reports it as missing rather
    than this query failing.  Derived columns (``_`` prefix, not bookkeeping) come from
    ``derive(name)``.  ``quote``: the engine's identifier quoting (pipelines/quality/dialect.py).
    """
    items = []
    for name in columns:
        if name.lower() in existing:
            items.append(f"t.{quote(existing[name.lower()])} AS {quote(name)}")
        elif name.startswith("_") and name not in RAW_META_COLUMNS and derive is not None:
            sql, inputs = derive(name)
            if all(i.lower() in existing for i in inputs):
                items.append(f"{sql} AS {quote(name)}")
    return items


def as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def raw_frame_sql(con: duckdb.DuckDBPyConnection, table: str) -> tuple[list[str], str, list[str]]:
    """(select items, FROM/WHERE clause with $export_date, ORDER BY expressions) of a raw
    frame."""
    if table not in RAW_TABLES:
        raise KeyError(f"no raw suite for table {table!r}")
    existing = table_columns(con, "raw", table)
    items = _select_list(
        suite_columns(f"raw_{table}"), existing, lambda n: _derived_column(table, n)
    )
    order = ["t._line_number"] if "_line_number" in existing else []
    return items, f"FROM raw.{quote_ident(table)} t WHERE t._export_date = $export_date", order


def suite_frame_sql(
    suite_name: str,
    relation: str,
    existing: Mapping[str, str],
    quote: Callable[[str], str] = quote_ident,
) -> tuple[list[str], str, list[str]]:
    """(select items, FROM clause, ORDER BY expressions) of a table's frame for a suite
    without derived columns (the marts'): the suite's columns of ``relation`` (its columns
    are ``existing``: lower-cased name -> name), in either engine's quoting.

    Ordered by the suite's key, then by every other selected column: rows that share a key
    (a duplicate GX must report) then come in the same order from DuckDB and from Spark,
    whose sorts order ties arbitrarily."""
    items = _select_list(suite_columns(suite_name), existing, None, quote)
    key = [k.lower() for k in suite_spec(suite_name).get("meta", {}).get("key", [])]
    chosen = [c.lower() for c in suite_columns(suite_name)]
    by = [c for c in dict.fromkeys([*key, *chosen]) if c in existing]
    return items, f"FROM {relation} t", ["t." + quote(existing[c]) for c in by]


def check_mart(mart: str) -> str:
    """The mart's suite name; KeyError for a mart without a suite."""
    if mart not in MART_TABLES:
        raise KeyError(f"no mart suite for {mart!r}")
    return f"marts_{mart}"


def table_frame_sql(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, suite_name: str
) -> tuple[list[str], str, list[str]]:
    """`suite_frame_sql` of the store's table `schema.table`."""
    relation = f"{quote_ident(schema)}.{quote_ident(table)}"
    return suite_frame_sql(suite_name, relation, table_columns(con, schema, table))


def mart_frame_sql(con: duckdb.DuckDBPyConnection, mart: str) -> tuple[list[str], str, list[str]]:
    """`suite_frame_sql` of the store's marts.<mart>."""
    return table_frame_sql(con, "marts", mart, check_mart(mart))


def select_sql(items: list[str], source: str, order: list[str]) -> str:
    """The whole frame's query, in either engine's SQL (nulls last on both: Spark's default
    is nulls first, DuckDB's nulls last)."""
    sql = f"SELECT {', '.join(items) or 'NULL AS _none'} {source}"
    return sql + (f" ORDER BY {', '.join(o + ' NULLS LAST' for o in order)}" if order else "")


def whole_frame(
    run: Callable[[str], pd.DataFrame], items: list[str], source: str, order: list[str]
) -> pd.DataFrame:
    """Every row of the frame, `run` executing `select_sql` in its engine."""
    return run(select_sql(items, source, order)).drop(columns=["_none"], errors="ignore")


def query_frame(
    con: duckdb.DuckDBPyConnection,
    items: list[str],
    source: str,
    order: list[str],
    params: Mapping[str, Any],
) -> pd.DataFrame:
    return whole_frame(lambda sql: con.execute(sql, params).df(), items, source, order)


def frame_for_raw_check(
    con: duckdb.DuckDBPyConnection, table: str, export_date: dt.date | str
) -> pd.DataFrame:
    """One export's rows of raw.<table>: the suite's columns plus its derived booleans.

    Unknown customers are looked up against every raw.customers row of an export up to and
    including ``export_date`` (incremental exports reference earlier customers).
    """
    items, source, order = raw_frame_sql(con, table)
    return query_frame(con, items, source, order, {"export_date": as_date(export_date)})


def frame_for_mart_check(con: duckdb.DuckDBPyConnection, mart: str) -> pd.DataFrame:
    """The columns of marts.<mart> its suite refers to, ordered by the mart's key."""
    items, source, order = mart_frame_sql(con, mart)
    return query_frame(con, items, source, order, {})
