"""The resources of the nightly run: CRM exports, the DuckDB warehouse, segmentation, report.

Each setting of the README's "Configuration" table is a field of one of these resources (or
of the dbt resource, pipelines/dbt.py).  pipelines/definitions.py builds them from the
environment (no other module of the code location reads it); tests build them with
explicit values.

The warehouse resource is what makes a nightly run all-or-nothing for analysts.  The
pipeline keeps its data in a private store (`PIPELINE_STORE_DIR`, owner-only: raw exports
with their personal data, quarantine, identities, staging, history) and works on it in
place: each export is ingested in one transaction, segmentation writes in one, dbt rebuilds
its tables from raw every night.  The `publish` asset writes the analysts' warehouse
(`WAREHOUSE_PATH`: marts and audit counts only, pipelines/publish.py) as a new file and
renames it into place, so a run that fails or is killed leaves what analysts read untouched,
and the next run rebuilds from the store.  A file lock serialises runs, so two launches
never meet inside DuckDB.
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

from pipelines.maintenance import Compaction, compact, compacted_path, compaction_reason
from pipelines.publish import published_as_of, write_analysts_file
from pipelines.warehouse_tables import create_python_owned_tables, latest_export_date

if TYPE_CHECKING:
    from pipelines.segmentation import SegmentationConfig

# On a job that never publishes (nightly_ingest): its runs end without the warning below.
PUBLISHES_TAG = "referral_segments/publishes"

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
    # DuckDB's buffer pool while the extracts are written (sorted copies of every mart):
    # without it DuckDB may take 80% of RAM (~1 GB per million customers).
    memory_limit: str = "1GB"  # WAREHOUSE_MEMORY_LIMIT

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
    rescan_days: int = 28  # SEGMENT_RESCAN_DAYS
    rescan_silhouette_drop: float = 0.05  # SEGMENT_RESCAN_SILHOUETTE_DROP

    def config(self) -> SegmentationConfig:
        # scikit-learn sets environment variables (KMP_*) when imported: only a run that
        # segments imports it, never the code location.
        from pipelines.segmentation import SegmentationConfig

        return SegmentationConfig(
            k_min=self.k_min,
            k_max=self.k_max,
            min_share=self.min_share,
            seed=self.seed,
            rescan_days=self.rescan_days,
            rescan_silhouette_drop=self.rescan_silhouette_drop,
        )


STORE_FILE = "store.duckdb"


def store_path_for(published: Path, store_dir: str) -> Path:
    """The pipeline's store: `store_dir/store.duckdb`, by default in a folder `pipeline`
    next to the analysts' warehouse."""
    folder = absolute(store_dir) if store_dir else published.parent / "pipeline"
    return folder / STORE_FILE


class PublishedWarehouse(ConfigurableResource):
    """The analysts' warehouse, read only: what the export sensor and the report need.

    Unlike WarehouseResource it takes no lock and never opens the store, so a sensor tick
    or a report materialisation never waits for, or holds up, a nightly run."""

    path: str = "data/warehouse.duckdb"  # WAREHOUSE_PATH

    @property
    def published_path(self) -> Path:
        return absolute(self.path)

    def as_of_date(self) -> date | None:
        return published_as_of(self.published_path)


class WarehouseLocked(Failure):
    """Raised when another run holds the warehouse for longer than the lock timeout."""


class WarehouseResource(ConfigurableResource):
    """The pipeline's store and the analysts' warehouse as seen by one run: a lock, the
    store and a publish step."""

    path: str = "data/warehouse.duckdb"  # WAREHOUSE_PATH: the analysts' warehouse
    store_dir: str = ""  # PIPELINE_STORE_DIR ("": <WAREHOUSE_PATH's folder>/pipeline)
    lock_timeout_s: float = 3600.0  # WAREHOUSE_LOCK_TIMEOUT_S
    # DuckDB buffer pool of the Python steps (ingest, checks, segmentation); larger
    # operations spill to disk.  Bounded so a whole run stays within ~2 GiB (bench/README.md).
    memory_limit: str = "1GB"  # WAREHOUSE_MEMORY_LIMIT
    threads: int = 2
    # Above this many rows a GX check validates only the rows SQL pre-selects as possibly
    # failing (pipelines/quality/compact.py).
    gx_compact_min_rows: int = 100_000  # GX_COMPACT_MIN_ROWS
    # Raw versions superseded longer ago than this are dropped (pipelines/maintenance.py);
    # empty: every version is kept.
    raw_retention_days: str = ""  # RAW_RETENTION_DAYS

    _lock_file: IO[str] | None = PrivateAttr(default=None)
    _run_id: str = PrivateAttr(default="adhoc")
    _published: bool = PrivateAttr(default=False)

    @property
    def published_path(self) -> Path:
        return absolute(self.path)

    @property
    def store_path(self) -> Path:
        return store_path_for(self.published_path, self.store_dir)

    @property
    def lock_path(self) -> Path:
        return self.store_path.with_name(self.store_path.name + ".lock")

    # -- run lifecycle ---------------------------------------------------------------
    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._run_id = context.run_id if context and context.run_id else "adhoc"
        self.acquire(self._run_id, log=context.log if context else None)
        try:
            self.prepare_store()
        except BaseException:
            self.release()
            raise

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        run = context.dagster_run if context is not None else None
        ingest_only = run is not None and run.tags.get(PUBLISHES_TAG) == "no"
        if not self._published and not ingest_only and context.log is not None:
            # A failed run, or a materialisation that left out warehouse/published.
            context.log.warning(
                f"Run {self._run_id} ended without publishing: {self.published_path} is "
                "unchanged. The pipeline's store keeps the exports this run ingested (each "
                "whole or not at all); the next run builds the rest again. Runs that include "
                "the asset warehouse/published (nightly_refresh does) change what analysts see."
            )
        self.release()

    def acquire(self, owner: str, log=None) -> None:
        """Wait for the run lock; fail with the holder's name after the timeout."""
        self.published_path.parent.mkdir(parents=True, exist_ok=True)
        private_folder(self.store_path.parent)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = open(fd, "a+")  # noqa: SIM115 - held for the whole run
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
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def prepare_store(self) -> None:
        """Open the store for this run (we hold the lock): create what is missing, and
        take a warehouse of an older release (raw inside the analysts' file) as the store.

        Files of older releases or of a run killed mid-compaction are removed first: no live
        run owns them.  The store is used in place, never copied: a run's cost and disk
        follow the data, not the size of the store (docs/decisions.md, "Stores")."""
        store = self.store_path
        for stale in [*store.parent.glob(store.name + ".build*"), compacted_path(store)]:
            _remove_database(stale)
        if not store.exists() and _holds_raw(self.published_path):
            fresh = store.with_name(store.name + ".new")
            shutil.copyfile(self.published_path, fresh)
            _replace_durably(fresh, store)
        try:
            with self.connect() as con:
                create_python_owned_tables(con)
        except duckdb.IOException as exc:
            raise Failure(
                description=f"The pipeline's store {store} is held by another process: {exc}",
                allow_retries=False,
            ) from exc
        os.chmod(store, 0o600)

    def publish(self) -> Compaction | None:
        """Write the analysts' warehouse from the store and rename it into place (atomic);
        the store is first rewritten when it needs compacting (pipelines/maintenance.py).
        Killed before the rename, analysts keep the previous night and the next run
        publishes again."""
        published = self.published_path
        fresh = published.with_name(published.name + ".new")
        _remove_database(fresh)
        compaction = None
        with self.connect() as con:
            con.execute("CHECKPOINT")
            write_analysts_file(con, fresh)
            reason = compaction_reason(con)
            if reason:
                compaction = compact(con, self.store_path, reason)
        if compaction is not None:
            # closed after a CHECKPOINT, the store has no write-ahead log left; one that
            # outlived it would be replayed onto the compacted file
            _remove_database_wal(self.store_path)
            _replace_durably(compacted_path(self.store_path), self.store_path)
        _replace_durably(fresh, published)
        self._published = True
        return compaction

    def retention_days(self) -> int | None:
        """RAW_RETENTION_DAYS as a number of days, None to keep every version."""
        text = str(self.raw_retention_days).strip()
        if not text:
            return None
        days = int(text)
        if days < 0:
            raise ValueError(f"RAW_RETENTION_DAYS must be >= 0, not {days}")
        return days

    # -- connections -----------------------------------------------------------------
    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection to the store (one writer at a time: dbt, a child
        process, opens it between the Python steps)."""
        con = duckdb.connect(
            str(self.store_path),
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
    _remove_database_wal(path)


def _remove_database_wal(path: Path) -> None:
    Path(str(path) + ".wal").unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(source: Path, target: Path) -> None:
    """rename(2) with the data and the directory entry on disk before and after."""
    _fsync(source)
    os.replace(source, target)
    _fsync(target.parent)


def private_folder(folder: Path) -> None:
    """The store's folder, readable by its owner only (created so, or made so)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _holds_raw(path: Path) -> bool:
    """Whether a DuckDB file is a warehouse of an older release (raw schema inside)."""
    if not path.exists():
        return False
    con = duckdb.connect(str(path), read_only=True)
    try:
        return bool(
            con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' "
                "AND table_name = 'exports'"
            ).fetchone()[0]
        )
    finally:
        con.close()
