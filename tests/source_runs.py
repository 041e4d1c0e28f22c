"""Helpers shared by the source-system tests (tests/test_sources_*.py): an in-memory
warehouse to ingest a fixture export into, a raw order by its id, and a whole nightly run
(once per module) checked for personal data."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

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


def ingest_all(con, root: Path, threshold: float = 0.05, registry=None) -> list:
    """Every export under `root`, oldest first, ingested like `ingest`."""
    registry = registry if registry is not None else load_registry()
    return [
        ingest_export(con, folder, threshold, "USD", DEFAULT_EMAIL_SALT, registry)
        for folder in discover_exports(root)
    ]


def ingested(root: Path, threshold: float = 0.05):
    """A new in-memory warehouse with the one export under `root` ingested: (connection,
    result); the caller closes the connection."""
    con = connect()
    return con, ingest(con, root, threshold)


def ingested_once(fixture: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, object]]:
    """Body of a module's `raw` fixture (`yield from`): the fixture export ingested once
    (threshold 5%, base USD), read by every test of the module, closed after them."""
    con, result = ingested(fixture)
    try:
        yield con, result
    finally:
        con.close()


ORDER_COLUMNS = "customer_id, order_date, amount, currency, status, _line_number"


def order(con, order_id: str, columns: str = ORDER_COLUMNS) -> tuple | None:
    """`columns` of the raw order `order_id` (None if there is none)."""
    return con.execute(
        f"SELECT {columns} FROM raw.orders WHERE order_id = ?", [order_id]
    ).fetchone()


def run_once(tmp_path_factory: pytest.TempPathFactory, fixture: Path) -> tuple[Path, str]:
    """Body of a module's `warehouse` fixture: the whole nightly job once on a copy of
    `fixture` (its export folders); the warehouse and the run's log text (`run_with_logs`),
    read by every test of the module."""
    root = tmp_path_factory.mktemp(f"{fixture.name}_run")
    shutil.copytree(fixture, root / "exports")
    return run_with_logs(root)


def referral_marts(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, tuple], tuple]:
    """Per customer (referrals_sent, referrals_converted, is_referred,
    referred_by_customer_id) from customer_features, and the overall ROI row (referrers,
    referrals_sent, referrals_converted, referred_customers, referred_revenue,
    reward_cost): what the referral systems' tests compare with hand-computed values."""
    features = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT customer_id, referrals_sent, referrals_converted, is_referred, "
            "referred_by_customer_id FROM marts.customer_features"
        ).fetchall()
    }
    roi = con.execute(
        "SELECT referrers, referrals_sent, referrals_converted, referred_customers, "
        "referred_revenue, reward_cost FROM marts.referral_roi_by_segment "
        "WHERE segment_id = 'all'"
    ).fetchone()
    return features, roi


def run_with_logs(root: Path) -> tuple[Path, str]:
    """The whole night on `root/exports`; the warehouse and its runs' log text (every log
    line and event with its metadata, ingest and refresh)."""
    from dagster import DagsterInstance

    wh = root / "warehouse.duckdb"
    with DagsterInstance.ephemeral() as instance:
        result = run_job(root / "exports", wh, instance=instance)
        assert result.success, failure_messages(result)
        records = [r for run in result.runs for r in instance.all_logs(run.run_id)]
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
