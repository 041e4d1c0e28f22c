"""Great Expectations suites run as Dagster asset checks.

One GX 1.x suite per raw table and per mart lives in ``expectations/<suite>.json``
(``raw_<table>``, ``marts_<mart>``).  Suites are validated against pandas DataFrames read
from DuckDB (GX's SQL datasource does not work against DuckDB) or, for the mart checks on
the Spark engine, selected in Spark, in one lazily created ephemeral GX context per
process.

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

Modules: `suites` (expectations/*.json, suite columns, the GX context), `validation`
(`validate_frame`, ValidationOutcome, ExpectationResult), `frames` (the SQL of raw and mart
frames, derived columns), `compact` (compact frames: SQL pre-selection of the rows that may
break an expectation, run by a `FrameEngine`; DuckDB's), `dialect` (what differs between
DuckDB's and Spark's SQL), `spark` (mart frames selected in Spark), `results`
(`record_results` to raw.validation_results), `checks` (the Dagster asset checks: raw check
specs evaluated by the ingest step, mart asset checks).
"""

from pipelines.quality.checks import (
    latest_export_date,
    mart_asset_checks,
    raw_check_results,
    raw_check_specs,
    refused_check_results,
)
from pipelines.quality.compact import (
    COMPACT_MIN_ROWS,
    Frame,
    compact_frame,
    mart_check_frame,
    raw_check_frame,
)
from pipelines.quality.frames import frame_for_mart_check, frame_for_raw_check
from pipelines.quality.results import VALIDATION_RESULTS_DDL, record_results
from pipelines.quality.suites import (
    EXPECTATIONS_DIR,
    MART_TABLES,
    RAW_TABLES,
    iter_suite_names,
    load_suite,
    suite_columns,
    suite_path,
)
from pipelines.quality.validation import (
    SAMPLE_SIZE,
    ExpectationResult,
    ValidationOutcome,
    validate_frame,
)

__all__ = [
    "COMPACT_MIN_ROWS",
    "EXPECTATIONS_DIR",
    "MART_TABLES",
    "RAW_TABLES",
    "SAMPLE_SIZE",
    "VALIDATION_RESULTS_DDL",
    "ExpectationResult",
    "Frame",
    "ValidationOutcome",
    "compact_frame",
    "frame_for_mart_check",
    "frame_for_raw_check",
    "iter_suite_names",
    "latest_export_date",
    "load_suite",
    "mart_asset_checks",
    "mart_check_frame",
    "raw_check_results",
    "refused_check_results",
    "raw_check_specs",
    "raw_check_frame",
    "record_results",
    "suite_columns",
    "suite_path",
    "validate_frame",
]
