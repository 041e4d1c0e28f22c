"""Great Expectations suites run as Dagster asset checks.

One GX 1.x suite per raw table and per mart lives in ``expectations/<suite>.json``
(``raw_<table>``, ``marts_<mart>``).  Suites are validated against pandas DataFrames read
from DuckDB (GX's SQL datasource does not work against DuckDB), in one lazily created
ephemeral GX context per process.

Rules that need context GX cannot see on one frame (a date after the export date, a
customer unknown to every export up to this one, "converted_at required when status =
converted", ...) are computed in DuckDB as derived boolean columns whose names start with
``_`` (True marks a bad row) and checked with ``expect_column_values_to_be_in_set([False])``.
An expectation's ``meta.sample_column`` names the column whose values are reported as the
sample of bad rows (e.g. the unknown customer_id instead of ``True``).

Each expectation carries GX's ``severity``.  A failed "critical" expectation fails the asset
check with severity ERROR, which blocks everything downstream.  Rules that ingest does not
quarantine and that downstream models tolerate (dates after the export date -- metrics cut at
as_of --, a month that is not the first day, a malformed currency code) are "warning": the
check fails with severity WARN, which Dagster shows but does not block on.

A raw frame holds only the columns its suite refers to, and above COMPACT_MIN_ROWS rows the
asset checks give GX only the rows that may break an expectation (see "compact frames"):
at 10M rows a full copy of a raw table into pandas is expensive.
"""

import datetime as dt
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    ConfigurableResource,
    MetadataValue,
    asset_check,
)

from pipelines.schemas import RAW_META_COLUMNS, TABLES

if TYPE_CHECKING:
    import great_expectations as gx

# Annotations stay real objects (no `from __future__ import annotations`): Dagster inspects
# the asset check's parameter types to find the context and the resource.
# GX must see this before it is imported (it is imported lazily, see _gx_context).
os.environ["GX_ANALYTICS_ENABLED"] = "false"

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"

RAW_TABLES: tuple[str, ...] = (
    "customers",
    "orders",
    "referrals",
    "surveys",
    "events",
    "marketing_spend",
    "referral_program_costs",
    "fx_rates",
)
MART_TABLES: tuple[str, ...] = (
    "customer_features",
    "customer_segments",
    "segment_profiles",
    "referral_roi_by_segment",
    "top_referrers",
)

SAMPLE_SIZE = 10
VALIDATION_RESULTS_DDL = """
CREATE TABLE IF NOT EXISTS raw.validation_results (
    run_id VARCHAR NOT NULL,
    export_date DATE,
    suite VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    column_name VARCHAR,
    success BOOLEAN NOT NULL,
    element_count BIGINT,
    unexpected_count BIGINT,
    sample JSON,
    severity VARCHAR,
    error VARCHAR,
    checked_at TIMESTAMPTZ DEFAULT current_timestamp
)"""


# --------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's result, JSON-safe."""

    type: str
    column: str | None
    success: bool
    severity: str = "critical"  # GX severity: critical | warning | info
    element_count: int | None = None
    unexpected_count: int | None = None
    partial_unexpected_list: list[Any] = field(default_factory=list)
    observed_value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ValidationOutcome:
    suite: str
    success: bool
    evaluated: int
    failed: int
    failures: list[ExpectationResult]
    results: list[ExpectationResult]

    @property
    def unexpected_count(self) -> int:
        return sum(f.unexpected_count or 0 for f in self.failures)

    @property
    def critical(self) -> bool:
        """Whether a failed expectation has GX severity "critical" (the check blocks)."""
        return any(f.severity == "critical" for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- suites

_lock = threading.RLock()
_context: Any = None
_validation_definitions: dict[str, Any] = {}


def _gx_context() -> Any:
    """The process's ephemeral GX context with one pandas whole-DataFrame batch definition."""
    global _context
    with _lock:
        if _context is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = context.data_sources.add_pandas("quality").add_dataframe_asset("frames")
            asset.add_batch_definition_whole_dataframe("whole_frame")
            _context = context
        return _context


def _batch_definition() -> Any:
    return (
        _gx_context()
        .data_sources.get("quality")
        .get_asset("frames")
        .get_batch_definition("whole_frame")
    )


def suite_path(name: str) -> Path:
    return EXPECTATIONS_DIR / f"{name}.json"


def load_suite(name: str) -> "gx.ExpectationSuite":
    """A fresh (unregistered) ExpectationSuite from expectations/<name>.json.

    GX drops an invalid expectation with only a log line; this raises instead.
    """
    import great_expectations as gx

    _gx_context()  # make sure GX is configured before its first use
    spec = json.loads(suite_path(name).read_text())
    suite = gx.ExpectationSuite(
        name=spec["name"],
        expectations=spec.get("expectations", []),
        meta=spec.get("meta") or {},
        notes=spec.get("notes"),
    )
    if len(suite.expectations) != len(spec.get("expectations", [])):
        raise ValueError(f"{suite_path(name)}: an expectation is not valid (see the GX log)")
    if suite.name != name:
        raise ValueError(f"{suite_path(name)}: suite is named {suite.name!r}, expected {name!r}")
    return suite


def _suite_spec(name: str) -> dict[str, Any]:
    return json.loads(suite_path(name).read_text())


def _validation_definition(suite_name: str) -> Any:
    with _lock:
        vd = _validation_definitions.get(suite_name)
        if vd is None:
            import great_expectations as gx

            context = _gx_context()
            suite = context.suites.add(load_suite(suite_name))
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(
                    data=_batch_definition(), suite=suite, name=f"validate_{suite_name}"
                )
            )
            _validation_definitions[suite_name] = vd
        return vd


def suite_columns(suite_name: str) -> list[str]:
    """Columns a suite refers to (kwargs and meta.sample_column), in first-use order."""
    names: list[str] = []
    for exp in _suite_spec(suite_name)["expectations"]:
        kw = exp.get("kwargs", {})
        for key in ("column", "column_A", "column_B"):
            if kw.get(key):
                names.append(kw[key])
        for key in ("column_list", "column_set"):
            names.extend(kw.get(key) or [])
        if (exp.get("meta") or {}).get("sample_column"):
            names.append(exp["meta"]["sample_column"])
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- validation


def _json_safe(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        return None if value is pd.NaT else value.isoformat()
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, bool | int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column"):
        return kwargs["column"]
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    if kwargs.get("column_list"):
        return ",".join(kwargs["column_list"])
    return None


def _error_message(exception_info: Any) -> str | None:
    """First exception message of a GX result (flat or keyed by metric)."""
    if not isinstance(exception_info, Mapping):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    for info in exception_info.values():
        if isinstance(info, Mapping) and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def _result(er: Any, df: pd.DataFrame) -> ExpectationResult:
    config = er.expectation_config
    res = dict(er.result or {})
    sample = list(res.get("partial_unexpected_list") or [])
    sample_column = (config.meta or {}).get("sample_column")
    index = res.get("partial_unexpected_index_list")
    if sample_column and sample_column in df.columns and index is not None:
        sample = df[sample_column].loc[list(index)].tolist()
    observed = res.get("observed_value")
    details = res.get("details") or {}
    if config.type == "expect_table_columns_to_match_set":
        sample = list((details.get("mismatched") or {}).get("missing") or [])
    element_count = res.get("element_count")
    return ExpectationResult(
        type=config.type,
        column=_column_of(config.kwargs),
        success=bool(er.success),
        severity=getattr(config.severity, "value", str(config.severity or "critical")),
        element_count=int(element_count) if element_count is not None else len(df),
        unexpected_count=(
            int(res["unexpected_count"]) if res.get("unexpected_count") is not None else None
        ),
        partial_unexpected_list=_json_safe(sample[:SAMPLE_SIZE]),
        observed_value=_json_safe(observed),
        error=_error_message(er.exception_info),
    )


def validate_frame(
    suite_name: str, df: pd.DataFrame, element_count: int | None = None
) -> ValidationOutcome:
    """Validate a DataFrame against expectations/<suite_name>.json.

    ``element_count``: the number of rows of the table the frame stands for, when the
    frame is a compact one (see `compact_frame`); every result reports it.
    """
    vd = _validation_definition(suite_name)
    order = {e.id: i for i, e in enumerate(vd.suite.expectations)}
    with _lock:
        run = vd.run(batch_parameters={"dataframe": df})
    ordered = sorted(run.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    results = [_result(er, df) for er in ordered]
    if element_count is not None:
        results = [replace(r, element_count=element_count) for r in results]
    failures = [r for r in results if not r.success]
    return ValidationOutcome(
        suite=suite_name,
        success=not failures,
        evaluated=len(results),
        failed=len(failures),
        failures=failures,
        results=results,
    )


# --------------------------------------------------------------------------- frames


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
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
    """SQL (row alias ``t``, parameter ``$export_date``) of a derived column and its inputs."""
    if name == "_unknown_customer":
        ref = next(c.name for c in TABLES[table].columns if c.customer_ref)
        sql = (
            f"(t.{_q(ref)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM raw.customers c "
            f"WHERE c.customer_id = t.{_q(ref)} AND c._export_date <= $export_date))"
        )
        return sql, (ref,)
    if name.endswith("_after_export_date"):
        col = name[1 : -len("_after_export_date")]
        return f"COALESCE(CAST(t.{_q(col)} AS DATE) > $export_date, FALSE)", (col,)
    if name.endswith("_not_first_day"):
        col = name[1 : -len("_not_first_day")]
        return f"COALESCE(dayofmonth(t.{_q(col)}) <> 1, FALSE)", (col,)
    if name == "_converted_without_converted_at":
        sql = "COALESCE(t.status = 'converted' AND t.converted_at IS NULL, FALSE)"
        return sql, ("status", "converted_at")
    if name == "_no_score":
        return "(t.nps IS NULL AND t.csat IS NULL)", ("nps", "csat")
    raise KeyError(f"unknown derived column {name!r} (table {table})")


def _select_list(columns: Iterable[str], existing: Mapping[str, str], derive: Any) -> list[str]:
    """SELECT items for the columns a suite needs.

    A column missing from the table is left out, so the suite reports it as missing rather
    than this query failing.  Derived columns (``_`` prefix, not bookkeeping) come from
    ``derive(name)``.
    """
    items = []
    for name in columns:
        if name.lower() in existing:
            items.append(f"t.{_q(existing[name.lower()])} AS {_q(name)}")
        elif name.startswith("_") and name not in RAW_META_COLUMNS and derive is not None:
            sql, inputs = derive(name)
            if all(i.lower() in existing for i in inputs):
                items.append(f"{sql} AS {_q(name)}")
    return items


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _raw_frame_sql(
    con: duckdb.DuckDBPyConnection, table: str
) -> tuple[list[str], str, str]:
    """(select items, FROM/WHERE clause with $export_date, ORDER BY items) of a raw frame."""
    if table not in RAW_TABLES:
        raise KeyError(f"no raw suite for table {table!r}")
    existing = _table_columns(con, "raw", table)
    items = _select_list(
        suite_columns(f"raw_{table}"), existing, lambda n: _derived_column(table, n)
    )
    order = "t._line_number" if "_line_number" in existing else ""
    return items, f"FROM raw.{_q(table)} t WHERE t._export_date = $export_date", order


def _mart_frame_sql(con: duckdb.DuckDBPyConnection, mart: str) -> tuple[list[str], str, str]:
    if mart not in MART_TABLES:
        raise KeyError(f"no mart suite for {mart!r}")
    suite_name = f"marts_{mart}"
    existing = _table_columns(con, "marts", mart)
    items = _select_list(suite_columns(suite_name), existing, None)
    key = [k for k in _suite_spec(suite_name).get("meta", {}).get("key", []) if k in existing]
    return items, f"FROM marts.{_q(mart)} t", ", ".join("t." + _q(existing[k]) for k in key)


def _frame(con, items, source, order, params) -> pd.DataFrame:
    sql = f"SELECT {', '.join(items) or 'NULL AS _none'} {source}"
    sql += f" ORDER BY {order}" if order else ""
    return con.execute(sql, params).df().drop(columns=["_none"], errors="ignore")


def frame_for_raw_check(
    con: duckdb.DuckDBPyConnection, table: str, export_date: dt.date | str
) -> pd.DataFrame:
    """One export's rows of raw.<table>: the suite's columns plus its derived booleans.

    Unknown customers are looked up against every raw.customers row of an export up to and
    including ``export_date`` (incremental exports reference earlier customers).
    """
    items, source, order = _raw_frame_sql(con, table)
    return _frame(con, items, source, order, {"export_date": _as_date(export_date)})


def frame_for_mart_check(con: duckdb.DuckDBPyConnection, mart: str) -> pd.DataFrame:
    """The columns of marts.<mart> its suite refers to, ordered by the mart's key."""
    items, source, order = _mart_frame_sql(con, mart)
    return _frame(con, items, source, order, {})


# --------------------------------------------------------------------------- compact frames
#
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

COMPACT_MIN_ROWS = int(os.getenv("GX_COMPACT_MIN_ROWS", "100000"))
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")


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
    c = _q(col) if col is not None else None
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
        for bound, strict, op_strict, op in ((lo, "strict_min", ">", ">="),
                                             (hi, "strict_max", "<", "<=")):
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
            return (f"({c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN "
                    f"({', '.join(repr(v) for v in lits) or 'NULL'}))")
        if all(isinstance(v, str) for v in values):
            lits = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
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
        cmp = f"coalesce(CAST({_q(a)} AS DOUBLE) {op} CAST({_q(b)} AS DOUBLE), FALSE)"
        if kw.get("ignore_row_if") == "either_value_is_missing":
            return f"({_q(a)} IS NOT NULL AND {_q(b)} IS NOT NULL AND NOT {cmp})"
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
        return Frame(_frame(con, items, source, order, params), rows)
    body = f"SELECT {', '.join(items)}" + (f", {order} AS __order" if order else "")
    body += f" {source}"
    types = {name: typ for name, typ, *_ in con.execute(
        f"DESCRIBE SELECT * FROM ({body})", params).fetchall()}
    temps: list[str] = []

    def dup_table(col: str) -> str:
        name = f"_gx_dups_{len(temps)}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {_q(col)} AS v "
                    f"FROM ({body}) GROUP BY 1 HAVING count(*) > 1", params)
        temps.append(name)
        return name

    def mismatch_table(col: str, regex: str) -> str:
        name = f"_gx_mismatch_{len(temps)}"
        pattern = regex.replace("'", "''")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT v FROM (SELECT DISTINCT "
            f"CAST({_q(col)} AS VARCHAR) AS v FROM ({body})) "
            f"WHERE v IS NOT NULL AND NOT coalesce(regexp_full_match(v, '{pattern}'), FALSE)",
            params,
        )
        temps.append(name)
        return name

    try:
        preds = []
        for exp in _suite_spec(suite_name)["expectations"]:
            pred = _may_fail_sql(exp, types, dup_table, mismatch_table)
            if pred is None:
                return Frame(_frame(con, items, source, order, params), rows)
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
    con: duckdb.DuckDBPyConnection, table: str, export_date: dt.date | str,
    min_rows: int | None = None,
) -> Frame:
    """`frame_for_raw_check`, compacted when large (what the asset check validates)."""
    items, source, order = _raw_frame_sql(con, table)
    return compact_frame(con, f"raw_{table}", items, source, order,
                         {"export_date": _as_date(export_date)}, min_rows)


def mart_check_frame(
    con: duckdb.DuckDBPyConnection, mart: str, min_rows: int | None = None
) -> Frame:
    """`frame_for_mart_check`, compacted when large (what the asset check validates)."""
    items, source, order = _mart_frame_sql(con, mart)
    return compact_frame(con, f"marts_{mart}", items, source, order, {}, min_rows)


# --------------------------------------------------------------------------- results log


def record_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    export_date: dt.date | str | None,
    outcome: ValidationOutcome,
) -> None:
    """Log every expectation's result to raw.validation_results (replacing this run's rows
    for the suite, so a retried check does not log twice)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(VALIDATION_RESULTS_DDL)
    export_date = _as_date(export_date) if export_date is not None else None
    rows = [
        (
            run_id,
            export_date,
            outcome.suite,
            r.type,
            r.column,
            r.success,
            r.element_count,
            r.unexpected_count,
            json.dumps(
                r.partial_unexpected_list if r.partial_unexpected_list else r.observed_value
            ),
            r.severity,
            r.error,
        )
        for r in outcome.results
    ]
    con.execute("BEGIN")
    try:
        con.execute(
            "DELETE FROM raw.validation_results WHERE run_id = ? AND suite = ?",
            [run_id, outcome.suite],
        )
        if rows:
            con.executemany(
                "INSERT INTO raw.validation_results (run_id, export_date, suite, expectation, "
                "column_name, success, element_count, unexpected_count, sample, severity, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------- Dagster


def latest_export_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The run's as-of date: max(export_date) of raw.exports (None when nothing ingested)."""
    row = con.execute("SELECT max(export_date) FROM raw.exports").fetchone()
    return row[0] if row else None


def _check_metadata(outcome: ValidationOutcome, export_date: dt.date) -> dict[str, Any]:
    return {
        "suite": outcome.suite,
        "export_date": export_date.isoformat(),
        "evaluated": outcome.evaluated,
        "failed": outcome.failed,
        "failed_expectations": MetadataValue.json(
            [
                {
                    "type": f.type,
                    "column": f.column,
                    "severity": f.severity,
                    "unexpected_count": f.unexpected_count,
                    "element_count": f.element_count,
                    **({"error": f.error} if f.error else {}),
                }
                for f in outcome.failures
            ]
        ),
        "unexpected_count": outcome.unexpected_count,
        "sample_bad_values": MetadataValue.json(
            {
                f"{f.type}:{f.column or ''}": (f.partial_unexpected_list or f.observed_value)
                for f in outcome.failures
            }
        ),
    }


def _run_check(
    context: AssetCheckExecutionContext,
    warehouse: Any,
    suite_name: str,
    build_frame: Any,
) -> AssetCheckResult:
    # Read, then validate without holding the connection (DuckDB has one writer), then log.
    with warehouse.connect() as con:
        export_date = latest_export_date(con)
        frame = build_frame(con, export_date) if export_date is not None else None
    if frame is None:
        return AssetCheckResult(
            passed=False,
            description="raw.exports is empty: no export to validate",
            metadata={"suite": suite_name},
        )
    outcome = validate_frame(
        suite_name, frame.df, element_count=frame.rows if frame.compact else None
    )
    del frame
    with warehouse.connect() as con:
        record_results(con, context.run.run_id, export_date, outcome)
    failed = ", ".join(f"{f.type}({f.column or ''})" for f in outcome.failures)
    # A failed "critical" expectation fails the check with severity ERROR, which blocks
    # everything downstream; failed "warning" expectations only give a WARN result.
    return AssetCheckResult(
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR if outcome.critical else AssetCheckSeverity.WARN,
        description=f"{outcome.failed} of {outcome.evaluated} expectations failed: {failed}"
        if failed
        else f"all {outcome.evaluated} expectations passed",
        metadata=_check_metadata(outcome, export_date),
    )


def _make_check(
    asset_key: AssetKey,
    suite_name: str,
    build_frame: Any,
    description: str,
    pool: str | None,
) -> AssetChecksDefinition:
    @asset_check(
        asset=asset_key,
        name=f"gx_{suite_name}",
        blocking=True,
        description=description,
        pool=pool,
    )
    def _check(
        context: AssetCheckExecutionContext, warehouse: ConfigurableResource
    ) -> AssetCheckResult:
        # `warehouse` is duck-typed: anything with .connect() -> context manager of a
        # DuckDB connection to the run's build database.
        return _run_check(context, warehouse, suite_name, build_frame)

    return _check


def _raw_builder(table: str) -> Any:
    return lambda con, export_date: raw_check_frame(con, table, export_date)


def _mart_builder(mart: str) -> Any:
    return lambda con, export_date: mart_check_frame(con, mart)


def raw_asset_checks(
    tables: Sequence[str] = RAW_TABLES, *, pool: str | None = None
) -> list[AssetChecksDefinition]:
    """One blocking check ``gx_raw_<table>`` per raw table, on the newest export's rows.

    Needs the resource ``warehouse`` (``.connect()`` -> context manager of a DuckDB
    connection); ``pool`` serialises them with the other DuckDB writers if given.
    """
    return [
        _make_check(
            AssetKey(["raw", t]),
            f"raw_{t}",
            _raw_builder(t),
            f"Great Expectations suite expectations/raw_{t}.json on the newest export",
            pool,
        )
        for t in tables
    ]


def mart_asset_checks(
    marts: Sequence[str] = MART_TABLES, *, pool: str | None = None
) -> list[AssetChecksDefinition]:
    """One blocking check ``gx_marts_<mart>`` per mart (a failure stops publishing)."""
    return [
        _make_check(
            AssetKey(["marts", m]),
            f"marts_{m}",
            _mart_builder(m),
            f"Great Expectations suite expectations/marts_{m}.json",
            pool,
        )
        for m in marts
    ]


def iter_suite_names() -> Iterator[str]:
    yield from (f"raw_{t}" for t in RAW_TABLES)
    yield from (f"marts_{m}" for m in MART_TABLES)
