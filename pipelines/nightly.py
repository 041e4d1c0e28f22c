"""`make run`: make sure an export exists, run one night, print a summary.

A night is what the schedule and its sensor start: nightly_ingest for the newest export,
then, when it succeeded, nightly_refresh (pipelines/automation.py).

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
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import DagsterInstance, Definitions, ExecuteInProcessResult

from pipelines.alerts import root_cause
from pipelines.assets import EXPORT_DATE_TAG, RAW_CHECKS_TIME
from pipelines.automation import refresh_request, register_export_partitions
from pipelines.definitions import definitions_from_env, setting
from pipelines.ingest import discover_exports
from pipelines.resources import absolute

_PROCESS_START = time.time()
INGEST_STEP = "ingest_exports"


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


@dataclass
class Night:
    """The runs of one night, in order: the ingest, then the refresh when ingest succeeded.
    Read like one run's result: events of both, success of both, the last run's id."""

    runs: list[ExecuteInProcessResult]

    @property
    def success(self) -> bool:
        return len(self.runs) == 2 and all(r.success for r in self.runs)

    @property
    def last(self) -> ExecuteInProcessResult:
        return self.runs[-1]

    @property
    def run_id(self) -> str:
        return self.last.run_id

    @property
    def dagster_run(self):
        return self.last.dagster_run

    @property
    def all_events(self) -> list:
        return [e for r in self.runs for e in r.all_events]

    def get_step_failure_events(self) -> list:
        return [e for r in self.runs for e in r.get_step_failure_events()]

    def get_asset_materialization_events(self) -> list:
        return [e for r in self.runs for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [e for r in self.runs for e in r.get_asset_check_evaluations()]


def split_run_config(run_config: dict | None) -> tuple[dict, dict]:
    """One night's run config as the two runs': the ingest step's op config to the ingest
    run, every other op's to the refresh, the rest (loggers) to both."""
    config = dict(run_config or {})
    ops = config.pop("ops", {})
    ingest = {k: v for k, v in ops.items() if k == INGEST_STEP}
    refresh = {k: v for k, v in ops.items() if k != INGEST_STEP}
    return (
        {**config, **({"ops": ingest} if ingest else {})},
        {**config, **({"ops": refresh} if refresh else {})},
    )


def run_night(
    defs: Definitions,
    instance: DagsterInstance,
    exports_dir: Path,
    run_config: dict | None = None,
) -> Night:
    """nightly_ingest for the newest export, then nightly_refresh if it succeeded, both in
    this process, as the schedule and the sensor nightly_refresh_after_ingest run them.

    `run_config` is the night's: each op's config goes to the run that has the op."""
    ingest_config, refresh_config = split_run_config(run_config)
    ingest = defs.resolve_job_def("nightly_ingest").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=ingest_config,
        **night_launch(instance, exports_dir),
    )
    runs = [ingest]
    if ingest.success:
        runs.append(
            defs.resolve_job_def("nightly_refresh").execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config=refresh_config,
                tags=refresh_request(ingest.dagster_run).tags,
            )
        )
    return Night(runs)


def run_nightly(defs: Definitions, ingest_config: dict | None = None) -> bool:
    """Run one night in this process, recorded in DAGSTER_HOME when it is set.

    `ingest_config` is the ingest step's run config (IngestConfig: skipped exports)."""
    instance = DagsterInstance.get() if os.getenv("DAGSTER_HOME") else DagsterInstance.ephemeral()
    # Console at INFO (NIGHTLY_LOG_LEVEL): the full DEBUG event log stays in DAGSTER_HOME.
    level = os.getenv("NIGHTLY_LOG_LEVEL", "INFO").upper()
    exports_dir = defs.resources["exports"].process_config_and_initialize().folder
    night = run_night(
        defs,
        instance,
        exports_dir,
        run_config={
            "loggers": {"console": {"config": {"log_level": level}}},
            **({"ops": {INGEST_STEP: {"config": ingest_config}}} if ingest_config else {}),
        },
    )
    if os.getenv("NIGHTLY_TIMINGS_JSON"):
        write_step_timings(instance, night, os.environ["NIGHTLY_TIMINGS_JSON"])
    if not night.success:
        for event in night.get_step_failure_events():
            detail = root_cause(event.step_failure_data.error)
            print(f"FAILED step {event.step_key}: {detail}", file=sys.stderr)
    return night.success


def write_step_timings(instance: DagsterInstance, night: Night, path: str) -> None:
    """Write each step's start, end and duration (from the runs' event logs) as JSON, with
    the segmentation's k and silhouette.

    Used by `make bench` (NIGHTLY_TIMINGS_JSON=path) for its per-stage breakdown.  The raw
    checks run inside the ingest step; their time (which the step logs) is given as the
    step `gx_raw_checks` and taken off `ingest_exports`, so ingest and validation read as
    they did when the checks were steps of their own.
    """
    segmentation = {}
    for event in night.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.path == ["marts", "segment_profiles"]:
            segmentation = {
                k: getattr(mat.metadata.get(k), "value", None)
                for k in ("k", "silhouette", "n_clustered", "fit_on_sample")
            }
    steps: dict[str, dict] = {}
    run: dict[str, float] = {}
    raw_checks_s = 0.0
    for result in night.runs:
        for entry in instance.all_logs(result.run_id):
            if entry.user_message.startswith(f"{RAW_CHECKS_TIME}="):
                raw_checks_s += float(entry.user_message.partition("=")[2])
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type_value
            if kind in ("RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
                run.setdefault(kind.lower(), entry.timestamp)  # the first run's start
                if kind != "RUN_START":
                    run[kind.lower()] = entry.timestamp  # the last run's end
            elif event.step_key and kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
                step = steps.setdefault(event.step_key, {})
                step["start" if kind == "STEP_START" else "end"] = entry.timestamp
                if kind != "STEP_START":
                    step["status"] = kind[5:].lower()
    for step in steps.values():
        if "start" in step and "end" in step:
            step["duration_s"] = round(step["end"] - step["start"], 3)
    if raw_checks_s and "duration_s" in steps.get("ingest_exports", {}):
        steps["ingest_exports"]["duration_s"] = round(
            steps["ingest_exports"]["duration_s"] - raw_checks_s, 3
        )
        steps["gx_raw_checks"] = {"duration_s": round(raw_checks_s, 3), "in": "ingest_exports"}
    Path(path).write_text(
        json.dumps(
            {
                "run_id": night.run_id,
                "run_ids": [r.run_id for r in night.runs],
                "success": night.success,
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
        print(f"Report:    {reports / str(as_of) / 'report.html'}")
        print(f"Extracts:  {reports / 'latest'}/<mart>.parquet")
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
        prog="python -m pipelines.nightly",
        description="Run one night: nightly_ingest, then nightly_refresh.",
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
        print("The night failed; the published warehouse was left as it was.", file=sys.stderr)
        return 1
    print_summary(absolute(setting("WAREHOUSE_PATH")), absolute(setting("REPORTS_DIR")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
