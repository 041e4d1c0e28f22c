"""Helpers shared by the source-system tests (tests/test_sources_*.py): an in-memory
warehouse to ingest a fixture export into, and a whole nightly run checked for personal
data."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.ingest import discover_exports, ingest_export
from pipelines.sources import DEFAULT_EMAIL_SALT, load_registry
from pipelines.warehouse_tables import create_python_owned_tables
from tests.pipeline_runner import failure_messages, run_job, store_of


def connect() -> duckdb.DuckDBPyConnection:
    """An empty in-memory warehouse with every Python-owned table, in UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(con)
    return con


def ingest(con, root: Path, threshold: float = 0.05, registry=None):
    """The one export under `root`, ingested with base USD and the default salt."""
    (folder,) = discover_exports(root)
    registry = registry if registry is not None else load_registry()
    return ingest_export(con, folder, threshold, "USD", DEFAULT_EMAIL_SALT, registry)


def run_with_logs(root: Path) -> tuple[Path, str]:
    """The whole nightly job on `root/exports`; the warehouse and the run's log text (every
    log line and event with its metadata)."""
    from dagster import DagsterInstance

    wh = root / "warehouse.duckdb"
    with DagsterInstance.ephemeral() as instance:
        result = run_job(root / "exports", wh, instance=instance)
        assert result.success, failure_messages(result)
        records = instance.all_logs(result.run_id)
    log_text = " ".join(
        f"{r.user_message} {r.dagster_event.event_specific_data if r.dagster_event else ''}"
        for r in records
    ).lower()
    return wh, log_text


def assert_no_personal_data(wh: Path, log_text: str, personal: set[str]) -> None:
    """No email (any "@example"), nor any of `personal` (names, free text) as a value, in
    staging, intermediate or marts of the pipeline's store, in any table of the analysts'
    warehouse `wh`, nor in the run's logs."""
    personal = {p.lower() for p in personal}
    scanned = 0
    for path, schemas in (
        (store_of(wh), ("staging", "intermediate", "marts")),
        (wh, ("marts", "audit")),
    ):
        con = duckdb.connect(str(path), read_only=True)
        try:
            in_list = ", ".join(f"'{s}'" for s in schemas)
            tables = con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                f"WHERE table_schema IN ({in_list})"
            ).fetchall()
            scanned += len(tables)
            for schema, table in tables:
                for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                    cells = {str(v).strip().lower() for v in row if v is not None}
                    assert not any("@example" in c for c in cells), f"{path.name} {schema}.{table}"
                    assert not (personal & cells), f"{schema}.{table}: {personal & cells}"
        finally:
            con.close()
    assert scanned > 20
    assert "@example" not in log_text
    assert not [p for p in personal if (" " in p or "@" in p) and p in log_text]
