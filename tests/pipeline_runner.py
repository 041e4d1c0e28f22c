"""Run the real nightly_refresh job in-process against throw-away folders."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import duckdb

MART_TABLES = (
    "customer_features",
    "customer_segments",
    "segment_profiles",
    "referral_roi_by_segment",
    "referral_roi_by_segment_monthly",
    "top_referrers",
    "segment_history",
    "segment_migrations",
)


@contextmanager
def env(**values: str | None):
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_job(
    exports_dir: Path,
    warehouse: Path,
    instance=None,
    run_config: dict | None = None,
    **extra_env: str,
):
    """Execute nightly_refresh once; returns the Dagster result (not raising on failure)."""
    from pipelines.definitions import make_definitions
    from pipelines.resources import Settings

    reports = str(warehouse.parent / "reports")
    with env(
        CRM_EXPORTS_DIR=str(exports_dir),
        WAREHOUSE_PATH=str(warehouse),
        REPORTS_DIR=reports,
        **extra_env,
    ):
        defs = make_definitions(Settings.from_env())
        return defs.resolve_job_def("nightly_refresh").execute_in_process(
            raise_on_error=False, instance=instance, run_config=run_config
        )


def table_bytes(warehouse: Path, table: str) -> bytes:
    """Every row of a table, in stored order, as CSV bytes: equal bytes = equal table."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table}").df().to_csv(index=False).encode()
    finally:
        con.close()


def failure_messages(result) -> list[str]:
    from pipelines.alerts import root_cause

    return [root_cause(e.step_failure_data.error) for e in result.get_step_failure_events()]
