"""`make run`: make sure an export exists, run nightly_refresh once, print a summary.

The code location is the one `dg dev` loads (`definitions_from_env`); besides it, this
entry point reads its own variables (SAMPLE_CUSTOMERS, NIGHTLY_LOG_LEVEL, DAGSTER_HOME,
NIGHTLY_TIMINGS_JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance, Definitions

from pipelines.alerts import root_cause
from pipelines.assets import EXPORT_DATE_TAG
from pipelines.automation import register_export_partitions
from pipelines.definitions import definitions_from_env, setting
from pipelines.ingest import discover_exports
from pipelines.resources import absolute

_PROCESS_START = time.time()


def ensure_sample_export(exports_dir: Path) -> None:
    """Generate the sample export when CRM_EXPORTS_DIR holds no export folder."""
    if discover_exports(exports_dir):
        return
    from pipelines.sample import generate_export

    customers = int(os.getenv("SAMPLE_CUSTOMERS", "5000"))
    folder = generate_export(exports_dir, customers=customers)
    print(f"No export found: generated a sample export of {customers} customers in {folder}")


def night_launch(instance: DagsterInstance, exports_dir: Path) -> dict:
    """The partition key and tags of tonight's run, as the schedule gives them: every export
    folder made a partition of `export_date`, the newest one run and tagged.  Without any
    export, a run without partition (ingest then fails saying so)."""
    newest = register_export_partitions(instance, exports_dir)
    if newest is None:
        return {}
    return {"partition_key": newest, "tags": {EXPORT_DATE_TAG: newest}}


def run_nightly(defs: Definitions, ingest_config: dict | None = None) -> bool:
    """Run nightly_refresh in this process, recorded in DAGSTER_HOME when it is set.

    `ingest_config` is the ingest step's run config (IngestConfig: skipped exports)."""
    instance = DagsterInstance.get() if os.getenv("DAGSTER_HOME") else DagsterInstance.ephemeral()
    # Console at INFO (NIGHTLY_LOG_LEVEL): the full DEBUG event log stays in DAGSTER_HOME.
    level = os.getenv("NIGHTLY_LOG_LEVEL", "INFO").upper()
    exports_dir = defs.resources["exports"].process_config_and_initialize().folder
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={
            "loggers": {"console": {"config": {"log_level": level}}},
            **({"ops": {"ingest_exports": {"config": ingest_config}}} if ingest_config else {}),
        },
        **night_launch(instance, exports_dir),
    )
    if os.getenv("NIGHTLY_TIMINGS_JSON"):
        write_step_timings(instance, result, os.environ["NIGHTLY_TIMINGS_JSON"])
    if not result.success:
        for event in result.get_step_failure_events():
            detail = root_cause(event.step_failure_data.error)
            print(f"FAILED step {event.step_key}: {detail}", file=sys.stderr)
    return result.success


def write_step_timings(instance: DagsterInstance, result, path: str) -> None:
    """Write each step's start, end and duration (from the run's event log) as JSON, with
    the segmentation's k and silhouette.

    Used by `make bench` (NIGHTLY_TIMINGS_JSON=path) for its per-stage breakdown.
    """
    run_id = result.run_id
    segmentation = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.path == ["marts", "segment_profiles"]:
            segmentation = {
                k: getattr(mat.metadata.get(k), "value", None)
                for k in ("k", "silhouette", "n_clustered", "fit_on_sample")
            }
    steps: dict[str, dict] = {}
    run: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind in ("RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
            run[kind.lower()] = entry.timestamp
        elif event.step_key and kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            step = steps.setdefault(event.step_key, {})
            step["start" if kind == "STEP_START" else "end"] = entry.timestamp
            if kind != "STEP_START":
                step["status"] = kind[5:].lower()
    for step in steps.values():
        if "start" in step and "end" in step:
            step["duration_s"] = round(step["end"] - step["start"], 3)
    Path(path).write_text(
        json.dumps(
            {
                "run_id": run_id,
                "success": result.success,
                "run": run,
                "steps": steps,
                "segmentation": segmentation,
                "process_start": _PROCESS_START,
                "written_at": time.time(),
            },
            indent=2,
        )
    )


def print_summary(warehouse: Path, reports: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        (as_of,) = con.execute("SELECT max(export_date) FROM audit.exports").fetchone()
        print(f"\nWarehouse: {warehouse}  (as of {as_of})")
        print(f"Report:    {reports / str(as_of) / 'report.html'}  (+ Parquet extracts)")
        for day, file, reason, resolution in con.execute(
            "SELECT export_date, file, reason, resolution FROM audit.refused_exports ORDER BY 1"
        ).fetchall():
            print(f"WARNING: export {day} was refused ({file}: {reason}); {resolution}")
        print("Tables:")
        for schema, table, rows in con.execute(
            "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name IN ('marts') ORDER BY 1, 2"
        ).fetchall():
            print(f"  {schema}.{table:<34} {rows:>10,} rows")
        print("\nSegments:")
        rows = con.execute(
            """
            SELECT p.segment_id, p.segment_name, p.customers, p.share,
                   r.referrals_sent, r.referral_conversion_rate, r.roi, p.recommended_incentive
            FROM marts.segment_profiles p
            LEFT JOIN marts.referral_roi_by_segment r USING (segment_id)
            ORDER BY p.customers DESC, p.segment_id
            """
        ).fetchall()
        print(
            f"  {'id':<10}{'name':<26}{'customers':>10}{'share':>7}{'refs':>7}"
            f"{'conv':>7}{'roi':>8}  incentive"
        )
        for sid, name, n, share, sent, conv, roi, incentive in rows:
            conv_s = f"{conv:.0%}" if conv is not None else "-"
            roi_s = f"{roi:.2f}" if roi is not None else "-"
            print(
                f"  {sid:<10}{name[:25]:<26}{n:>10,}{share:>7.1%}{(sent or 0):>7}"
                f"{conv_s:>7}{roi_s:>8}  {incentive}"
            )
    finally:
        con.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.nightly", description="Run nightly_refresh once."
    )
    parser.add_argument(
        "--skip-export",
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="accept the loss of this refused export: recorded as skipped, it no longer "
        "blocks later exports (repeatable)",
    )
    parser.add_argument("--skipped-by", default="", help="who accepts the loss (default: OS user)")
    parser.add_argument("--skip-note", default="", help="why, for the record")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ingest_config = (
        {
            "skip_refused_exports": args.skip_export,
            "skipped_by": args.skipped_by,
            "skip_note": args.skip_note,
        }
        if args.skip_export
        else None
    )
    ensure_sample_export(absolute(setting("CRM_EXPORTS_DIR")))
    if not run_nightly(definitions_from_env(), ingest_config):
        print(
            "nightly_refresh failed; the published warehouse was left as it was.", file=sys.stderr
        )
        return 1
    print_summary(absolute(setting("WAREHOUSE_PATH")), absolute(setting("REPORTS_DIR")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
