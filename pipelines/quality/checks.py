"""Dagster asset checks: one blocking check per raw table and per mart suite.

The raw checks are evaluated by the ingest step itself (check specs of its assets), so a
night's ingest run is one step whether the export is refused, checked or loaded; the mart
checks are asset checks of their own, in the refresh run.  On the Spark engine a mart
check selects its frame in Spark, from the night's table (pipelines/quality/spark.py); the
raw checks always read the store, which alone holds raw.  Either way GX validates the frame
on pandas and the results are logged in the store."""

import datetime as dt
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    ConfigurableResource,
    MetadataValue,
    PreviewWarning,
    asset_check,
)

from pipelines.quality.compact import Frame, mart_check_frame, raw_check_frame
from pipelines.quality.results import record_results
from pipelines.quality.suites import MART_TABLES, RAW_TABLES, suite_spec
from pipelines.quality.validation import ValidationOutcome, validate_frame
from pipelines.warehouse_tables import latest_export_date

# Annotations stay real objects (no `from __future__ import annotations`): Dagster inspects
# the asset check's parameter types to find the context and the resource.


def _check_metadata(
    outcome: ValidationOutcome, export_date: dt.date, origin: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "suite": outcome.suite,
        "export_date": export_date.isoformat(),
        # where the frame was selected (engine, table), so an operator sees what GX read
        **origin,
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
    run_id: str,
    warehouse: Any,
    check: AssetCheckKey,
    build_frame: Any,
    con: Any = None,
) -> AssetCheckResult:
    """``con``: a connection the caller holds for all its checks (the raw checks, in the
    ingest step); else one is opened to read and another to log."""
    suite = _suite_of(check)
    # Read, then validate without holding the connection (DuckDB has one writer), then log.
    with _connection(warehouse, con) as reading:
        export_date = latest_export_date(reading)
        min_rows = getattr(warehouse, "gx_compact_min_rows", None)
        frame = build_frame(reading, export_date, min_rows) if export_date is not None else None
    if frame is None:
        return AssetCheckResult(
            asset_key=check.asset_key,
            check_name=check.name,
            passed=False,
            description="raw.exports is empty: no export to validate",
            metadata={"suite": suite},
        )
    outcome = validate_frame(suite, frame.df, element_count=frame.rows if frame.compact else None)
    origin = dict(frame.origin)
    del frame
    with _connection(warehouse, con) as writing:
        record_results(writing, run_id, export_date, outcome)
    failed = ", ".join(f"{f.type}({f.column or ''})" for f in outcome.failures)
    # A failed "critical" expectation fails the check with severity ERROR, which blocks
    # everything downstream; failed "warning" expectations only give a WARN result.
    return AssetCheckResult(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR if outcome.critical else AssetCheckSeverity.WARN,
        description=f"{outcome.failed} of {outcome.evaluated} expectations failed: {failed}"
        if failed
        else f"all {outcome.evaluated} expectations passed",
        metadata=_check_metadata(outcome, export_date, origin),
    )


def _connection(warehouse: Any, con: Any) -> Any:
    return nullcontext(con) if con is not None else warehouse.connect()


def _make_check(
    asset_key: AssetKey,
    suite_name: str,
    build_frame: Any,
    description: str,
    pool: str | None,
) -> AssetChecksDefinition:
    """``build_frame(spark, warehouse)``: the frame builder of this run's engine (see
    `_mart_builder`)."""

    @asset_check(
        asset=asset_key,
        name=f"gx_{suite_name}",
        blocking=True,
        description=description,
        pool=pool,
    )
    def _check(
        context: AssetCheckExecutionContext,
        warehouse: ConfigurableResource,
        spark: ConfigurableResource,
    ) -> AssetCheckResult:
        # `warehouse` is duck-typed: anything with .connect() -> context manager of a
        # DuckDB connection to the pipeline's store (and .store_path on Spark); `spark`:
        # the SparkResource (pipelines/spark/engine.py), which says which engine built the
        # night.
        return _run_check(
            context.run.run_id,
            warehouse,
            AssetCheckKey(asset_key, f"gx_{suite_name}"),
            build_frame(spark, warehouse),
        )

    return _check


def _suite_of(check: AssetCheckKey) -> str:
    return check.name.removeprefix("gx_")


def _raw_builder(table: str) -> Any:
    return lambda con, export_date, min_rows: raw_check_frame(con, table, export_date, min_rows)


def _mart_builder(mart: str) -> Any:
    """A mart check's frame: selected in Spark from the night's table on the Spark engine
    (what Spark built, not the store's mirror of it), else in the store."""

    def bind(spark: Any, warehouse: Any) -> Any:
        if spark is not None and spark.enabled:
            return lambda con, export_date, min_rows: _spark_mart_frame(
                spark, warehouse, con, mart, min_rows
            )
        return lambda con, export_date, min_rows: mart_check_frame(con, mart, min_rows)

    return bind


def _spark_mart_frame(
    spark: Any, warehouse: Any, con: Any, mart: str, min_rows: int | None
) -> Frame:
    """The frame of `<night_prefix>marts.<mart>` selected in Spark.  A mart the Python
    segmentation wrote into the store is landed first (as the next dbt stage lands it):
    its check runs before that stage, so Spark has no copy of this night's table yet."""
    from pipelines.dbt import dbt_manifest
    from pipelines.quality.spark import land_python_mart, python_marts, spark_mart_check_frame

    store = warehouse.store_path.parent
    session, prefix = spark.session(store), spark.night_prefix
    if mart in python_marts(dbt_manifest()):
        land_python_mart(session, con, spark.lake(store), prefix, mart)
    return spark_mart_check_frame(session, mart, prefix, min_rows)


def describe_suite(suite_name: str) -> str:
    """The check's description in the catalog: which suite, which table, what it guards and
    what a failure means, read from the suite file so it cannot drift from what it checks."""
    spec = suite_spec(suite_name)
    meta = spec.get("meta") or {}
    expectations = spec.get("expectations", [])
    critical = sum(1 for e in expectations if e.get("severity", "critical") == "critical")
    checked = [e["kwargs"]["column"] for e in expectations if e.get("kwargs", {}).get("column")]
    columns = list(dict.fromkeys(c for c in checked if not c.startswith("_")))
    # Rules GX cannot see on one row are booleans computed in SQL (pipelines/quality/frames.py).
    derived = list(dict.fromkeys(c.lstrip("_") for c in checked if c.startswith("_")))
    table = meta.get("table", suite_name.replace("_", ".", 1))
    if suite_name.startswith("raw_"):
        guards = (
            f"the rows of {table} the newest export delivered, against the CRM export "
            "contract (docs/spec/crm-exports.md)"
        )
    else:
        guards = f"every row of {table} ({meta.get('description', '').rstrip('.')})"
    rules = f"{critical} critical and {len(expectations) - critical} warning expectations"
    over = f" on {', '.join(columns)}" if columns else ""
    extra = f"; row rules: {', '.join(derived)}" if derived else ""
    return (
        f"Great Expectations suite expectations/{suite_name}.json: guards {guards}. "
        f"{rules}{over}{extra}. A failed critical expectation fails this blocking check "
        "(severity ERROR): everything downstream is skipped and nothing is published that "
        "night. A failed warning expectation only warns. Failing expectations, counts and "
        "sample values are in the check's metadata and in raw.validation_results."
    )


def raw_check_specs(
    tables: Sequence[str] = RAW_TABLES, *, partitions_def: Any = None
) -> list[AssetCheckSpec]:
    """One blocking check ``gx_raw_<table>`` per raw table, on the newest export's rows,
    for the step that loads them (`raw_check_results`); per export date when partitioned,
    so the UI shows each night's result on its partition."""
    with warnings.catch_warnings():
        # Partitioned checks are "preview" in Dagster 1.13 (pinned in requirements.lock);
        # the warning would be printed each time the definitions load.
        warnings.simplefilter("ignore", PreviewWarning)
        return [
            AssetCheckSpec(
                f"gx_raw_{t}",
                asset=AssetKey(["raw", t]),
                blocking=True,
                description=describe_suite(f"raw_{t}"),
                partitions_def=partitions_def,
            )
            for t in tables
        ]


def raw_check_results(
    run_id: str, warehouse: Any, tables: Sequence[str] = RAW_TABLES
) -> Iterator[AssetCheckResult]:
    """Evaluate the raw checks one table at a time.  A failed critical expectation gives an
    ERROR result, which Dagster turns into the step's failure once it has yielded them all
    (blocking): nothing downstream runs that night.

    ``warehouse``: anything with ``.connect()`` -> context manager of a DuckDB connection
    to the pipeline's store."""
    # One connection for all: nothing else writes the store during the ingest step, and
    # each connection costs a catalog read and a checkpoint (~0.1 s at 1M customers).
    with warehouse.connect() as con:
        for t in tables:
            key = AssetCheckKey(AssetKey(["raw", t]), f"gx_raw_{t}")
            yield _run_check(run_id, warehouse, key, _raw_builder(t), con)


# What a refused export's check results carry of the refusal (the Failure's metadata).
REFUSAL_FIELDS = ("refused_export", "file", "column", "rule", "analysts_see_as_of")


def refused_check_results(
    refusal: Mapping[str, Any], tables: Sequence[str] = RAW_TABLES
) -> Iterator[AssetCheckResult]:
    """The raw checks of a refused export, which were never evaluated: its rows were not
    loaded.  Without a result Dagster shows each check of the partition as "Execution
    failed", which an operator reads as failed expectations; this result says what
    happened instead.  ``refusal``: the refusal Failure's metadata (plain values)."""
    where = f"{refusal['file']}" + (f", column {refusal['column']}" if refusal["column"] else "")
    for t in tables:
        yield AssetCheckResult(
            asset_key=AssetKey(["raw", t]),
            check_name=f"gx_raw_{t}",
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=f"Not evaluated: export {refusal['refused_export']} was refused at "
            f"ingest ({where}: {refusal['rule']}), so none of its rows were loaded. Analysts "
            f"still see {refusal['analysts_see_as_of']}.",
            metadata={
                "status": "not evaluated: export refused",
                **{k: refusal[k] for k in REFUSAL_FIELDS},
            },
        )


def mart_asset_checks(
    marts: Sequence[str] = MART_TABLES, *, pool: str | None = None
) -> list[AssetChecksDefinition]:
    """One blocking check ``gx_marts_<mart>`` per mart (a failure stops publishing)."""
    return _suite_checks("marts", marts, _mart_builder, pool)


def _suite_checks(
    schema: str, names: Sequence[str], builder: Any, pool: str | None
) -> list[AssetChecksDefinition]:
    return [
        _make_check(
            AssetKey([schema, n]),
            f"{schema}_{n}",
            builder(n),
            describe_suite(f"{schema}_{n}"),
            pool,
        )
        for n in names
    ]
