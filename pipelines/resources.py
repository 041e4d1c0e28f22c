"""The resources of the nightly run: CRM exports, the DuckDB warehouse, segmentation, report.

Each setting of the README's "Configuration" table is a field of one of these resources (or
of the dbt resource, pipelines/dbt.py).  pipelines/definitions.py builds them from the
environment (no other module of the code location reads it); tests build them with
explicit values.

The warehouse resource is what makes a nightly run all-or-nothing: every step of a run
writes to a private build copy of the published DuckDB file, and the `publish` asset swaps
that copy in with one atomic rename.  A run that fails or is killed leaves the published
file untouched.  A file lock serialises runs, so two launches never meet inside DuckDB.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING

import duckdb
from dagster import ConfigurableResource, Failure, InitResourceContext
from pydantic import PrivateAttr

from pipelines.dbt_child import dies_with_parent as dbt_dies_with_parent
from pipelines.warehouse_tables import create_python_owned_tables, latest_export_date

if TYPE_CHECKING:
    from pipelines.segmentation import SegmentationConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def absolute(path: str) -> Path:
    """Relative paths are taken from the project root, so dbt and Python agree."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


class ExportsResource(ConfigurableResource):
    """The folder of CRM export folders and how strictly an export is read."""

    path: str = "data/exports"  # CRM_EXPORTS_DIR
    bad_row_threshold: float = 0.05  # BAD_ROW_THRESHOLD
    base_currency: str = "USD"  # BASE_CURRENCY: rows in another currency need an fx rate
    # EMAIL_HASH_SALT: hashes the emails that link source systems (the identity crosswalk);
    # dbt reads the same variable itself, which keeps it off dbt's logged command line.
    email_hash_salt: str = "referral-segments-sample-salt"

    @property
    def folder(self) -> Path:
        return absolute(self.path)

    @property
    def currency(self) -> str:
        return self.base_currency.strip().upper()


class ReportsResource(ConfigurableResource):
    """Where the night's report goes, and the currency it labels amounts with."""

    path: str = "data/reports"  # REPORTS_DIR
    base_currency: str = "USD"  # BASE_CURRENCY

    @property
    def folder(self) -> Path:
        return absolute(self.path)

    @property
    def currency(self) -> str:
        return self.base_currency.strip().upper()


class SegmentationResource(ConfigurableResource):
    """The segmentation knobs an operator may turn (the others stay SegmentationConfig's)."""

    k_min: int = 3  # SEGMENT_K_MIN
    k_max: int = 8  # SEGMENT_K_MAX
    min_share: float = 0.03  # SEGMENT_MIN_SHARE
    seed: int = 42  # SEGMENT_SEED

    def config(self) -> SegmentationConfig:
        # scikit-learn sets environment variables (KMP_*) when imported: only a run that
        # segments imports it, never the code location.
        from pipelines.segmentation import SegmentationConfig

        return SegmentationConfig(
            k_min=self.k_min, k_max=self.k_max, min_share=self.min_share, seed=self.seed
        )


class PublishedWarehouse(ConfigurableResource):
    """The published warehouse, read only: what the export sensor and the report need.

    Unlike WarehouseResource it takes no lock and makes no build copy, so a sensor tick or
    a report materialisation never waits for, or holds up, a nightly run."""

    path: str = "data/warehouse.duckdb"  # WAREHOUSE_PATH

    @property
    def published_path(self) -> Path:
        return absolute(self.path)

    def as_of_date(self) -> date | None:
        return published_as_of(self.published_path)


def build_path_for(published: Path, run_id: str) -> Path:
    """Where a run builds: the same file every night when dbt dies with its run, so dbt's
    profile (which names the file) stays the same and dbt parses the project partially
    (~1.6 s less per dbt stage).  Elsewhere each run builds in its own file, so a killed
    run's orphaned dbt can never write into the next run's build."""
    if dbt_dies_with_parent():
        return published.with_name(f"{published.name}.build")
    return published.with_name(f"{published.name}.build-{run_id[:8]}")


class WarehouseLocked(Failure):
    """Raised when another run holds the warehouse for longer than the lock timeout."""


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse as seen by one run: a lock, a build copy and a publish step."""

    path: str = "data/warehouse.duckdb"  # WAREHOUSE_PATH
    lock_timeout_s: float = 3600.0  # WAREHOUSE_LOCK_TIMEOUT_S
    # DuckDB buffer pool of the Python steps (ingest, checks, segmentation); larger
    # operations spill to disk.  Bounded so a whole run stays within ~2 GiB (bench/README.md).
    memory_limit: str = "1GB"  # WAREHOUSE_MEMORY_LIMIT
    threads: int = 2
    # Above this many rows a GX check validates only the rows SQL pre-selects as possibly
    # failing (pipelines/quality/compact.py).
    gx_compact_min_rows: int = 100_000  # GX_COMPACT_MIN_ROWS

    _lock_file: IO[str] | None = PrivateAttr(default=None)
    _run_id: str = PrivateAttr(default="adhoc")

    @property
    def published_path(self) -> Path:
        return absolute(self.path)

    @property
    def build_path(self) -> Path:
        return build_path_for(self.published_path, self._run_id)

    @property
    def lock_path(self) -> Path:
        return self.published_path.with_name(self.published_path.name + ".lock")

    # -- run lifecycle ---------------------------------------------------------------
    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._run_id = context.run_id if context and context.run_id else "adhoc"
        self.acquire(self._run_id, log=context.log if context else None)
        self.prepare_build()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self.build_path.exists() and context is not None and context.log is not None:
            # A failed run, or a materialisation that left out warehouse/published.
            context.log.warning(
                f"Run {self._run_id} ended without publishing: its build copy is discarded "
                f"and {self.published_path} is unchanged. Runs that include the asset "
                "warehouse/published (nightly_refresh does) change what analysts see."
            )
        self.release()

    def acquire(self, owner: str, log=None) -> None:
        """Wait for the run lock; fail with the holder's name after the timeout."""
        self.published_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")  # noqa: SIM115 - held for the whole run
        deadline = time.monotonic() + self.lock_timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._lock_holder()
                if not announced and log is not None:
                    log.info(f"Warehouse busy (held by {holder}); waiting for it.")
                    announced = True
                if time.monotonic() >= deadline:
                    handle.close()
                    raise WarehouseLocked(
                        description=(
                            f"Warehouse {self.published_path} is locked by {holder} for more "
                            f"than {self.lock_timeout_s:.0f}s; this run did not start. "
                            "It will be picked up by the next launch."
                        ),
                        allow_retries=False,
                    ) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"run_id": owner, "pid": os.getpid()}))
        handle.flush()
        self._lock_file = handle

    def _lock_holder(self) -> str:
        try:
            info = json.loads(self.lock_path.read_text() or "{}")
            return f"run {info.get('run_id', '?')} (pid {info.get('pid', '?')})"
        except (OSError, ValueError):
            return "another run"

    def release(self) -> None:
        _remove_database(self.build_path)
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def prepare_build(self) -> None:
        """Start the run's build database as a copy of the last published one (dbt is
        told its path with each command: NightlyDbtResource.build_args).

        Build files left by killed runs are removed first: we hold the lock, so no live run
        owns them, and no dbt of theirs is alive (it died with its run, or it writes to
        its own per-run file, whose unlinked inode it keeps, harmlessly).
        """
        name = self.published_path.name
        for stale in self.published_path.parent.glob(name + ".build*"):
            stale.unlink(missing_ok=True)
        build = self.build_path
        if self.published_path.exists():
            shutil.copyfile(self.published_path, build)
        with self.connect() as con:
            create_python_owned_tables(con)

    def publish(self) -> Path:
        """Swap the build database in place of the published one, atomically."""
        with self.connect() as con:
            con.execute("CHECKPOINT")
        build = self.build_path
        fd = os.open(build, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(build, self.published_path)
        dir_fd = os.open(self.published_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.published_path

    # -- connections -----------------------------------------------------------------
    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection to this run's build database."""
        con = duckdb.connect(
            str(self.build_path),
            read_only=read_only,
            config={"memory_limit": self.memory_limit, "threads": self.threads},
        )
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    def as_of_date(self) -> date | None:
        with self.connect(read_only=True) as con:
            return latest_export_date(con)


def _remove_database(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def published_as_of(published: Path) -> date | None:
    """The newest export date in the published warehouse (None before the first run)."""
    if not published.exists():
        return None
    con = duckdb.connect(str(published), read_only=True)
    try:
        return latest_export_date(con)
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
