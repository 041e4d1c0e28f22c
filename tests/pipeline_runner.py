"""Run the real night (nightly_ingest, then nightly_refresh) in-process against throw-away
folders."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb

# The session's generated sample export (`sample_night`, tests/conftest.py): `make sample`'s
# contract layout, smaller.
SAMPLE_CUSTOMERS = 3000
SAMPLE_SEED = 7
SAMPLE_AS_OF = dt.date(2026, 11, 21)

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


def nightly_definitions(exports_dir: Path, warehouse: Path, **resources: Any):
    """The code location on these folders, every other setting explicit or its default
    (never the environment's); the report goes next to the warehouse."""
    from pipelines.definitions import make_definitions
    from pipelines.resources import ExportsResource, ReportsResource, WarehouseResource

    return make_definitions(
        exports=ExportsResource(path=str(exports_dir)),
        warehouse=WarehouseResource(path=str(warehouse)),
        reports=ReportsResource(path=str(warehouse.parent / "reports")),
        **resources,
    )


def run_job(
    exports_dir: Path,
    warehouse: Path,
    instance=None,
    run_config: dict | None = None,
    **resources: Any,
):
    """Run one night as `make run` does: nightly_ingest for the newest export's partition,
    tagged with its date, then nightly_refresh if it succeeded; returns the night
    (pipelines.nightly.Night, read like one run's result; never raises on failure)."""
    from dagster import DagsterInstance

    from pipelines.nightly import run_night

    defs = nightly_definitions(exports_dir, warehouse, **resources)
    if instance is not None:
        return run_night(defs, instance, Path(exports_dir), run_config)
    # closed here: left to the garbage collector, its temporary folder warns in a later test
    with DagsterInstance.ephemeral() as own:
        return run_night(defs, own, Path(exports_dir), run_config)


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


def store_of(warehouse: Path) -> Path:
    """The pipeline's store of a run whose analysts' warehouse is `warehouse` (the default
    place: a folder `pipeline` next to it): raw, staging, history and the marts as built."""
    from pipelines.resources import store_path_for

    return store_path_for(warehouse, "")


def copy_warehouse(source: Path, target: Path) -> None:
    """Both files of a run, the analysts' warehouse and its store, next to `target`."""
    shutil.copyfile(source, target)
    store_of(target).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(store_of(source), store_of(target))


def copy_night(night: Path, target: Path) -> Path:
    """A finished run's folder (`exports/`, `warehouse.duckdb`, its store and report) copied
    into `target`, so a test can run another night on it or change it while the original,
    shared by other tests, stays as it was; returns the copy's warehouse."""
    shutil.copytree(night, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".done"))
    return target / "warehouse.duckdb"
