"""One bad delivery does not stop every night after it (issue: refused exports).

Night 1 is the hand fixture (2026-11-21), published once and copied by each test; later
nights are copies of it, one of them damaged (60% of its orders point to an unknown
customer, so the export is refused). Each test runs the real night (nightly_ingest, then
nightly_refresh) night by night.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from pipelines import nightly
from pipelines.alerts import AlertWebhook, failure_summary
from pipelines.resources import PublishedWarehouse
from tests.exports import write_manifest
from tests.pipeline_runner import (
    MART_TABLES,
    copy_night,
    failure_messages,
    run_job,
    store_of,
    table_bytes,
)
from tests.test_safety import break_customer_refs, rewrite, sha256

FIXTURE = Path(__file__).parent / "fixtures" / "hand_export" / "2026-11-21"
BAD_REASON = (
    "orders.csv: 12 of 20 rows are bad (60.0% > 5% threshold); most common: unknown "
    "customer in column customer_id"
)


@pytest.fixture()
def nights(hand_night, tmp_path):
    """(exports dir, warehouse) after night 1 (a copy of `hand_night`, tests/conftest.py),
    and `add(day, mode, bad)` for later nights."""
    copy_night(hand_night, tmp_path)
    exports = tmp_path / "exports"

    def add(day: str, mode: str = "full", bad: bool = False) -> Path:
        folder = exports / day
        shutil.copytree(FIXTURE, folder)
        if bad:
            rewrite(folder / "orders.csv", break_customer_refs)
        write_manifest(folder, mode)
        return folder

    return exports, tmp_path / "warehouse.duckdb", add


def query(warehouse: Path, sql: str) -> list[tuple]:
    """A query on the pipeline's store of the run that published `warehouse` (raw)."""
    con = duckdb.connect(str(store_of(warehouse)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def exports_in_raw(warehouse: Path) -> list[str]:
    return [str(r[0]) for r in query(warehouse, "SELECT export_date FROM raw.exports ORDER BY 1")]


def ingest_metadata(result, key: str) -> str:
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.path == ["raw", "exports"]:
            return mat.metadata[key].value
    raise AssertionError("raw/exports was not materialized")


def test_refused_full_export_is_superseded_by_the_next_good_full_one(nights, hand_night, tmp_path):
    exports, wh, add = nights
    bad = add("2026-11-22", "full", bad=True)
    before = sha256(wh)
    result = run_job(exports, wh)  # night 2: nothing newer supersedes it yet
    assert not result.success
    assert sha256(wh) == before

    add("2026-11-23", "full")
    result = run_job(exports, wh)  # night 3 publishes, naming night 2's folder and reason
    assert result.success, failure_messages(result)
    warning = ingest_metadata(result, "refused_exports_settled")
    assert f"Export {bad} refused: {BAD_REASON} (full export); superseded by the full export " in (
        warning
    )
    assert "2026-11-23" in warning
    assert exports_in_raw(wh) == ["2026-11-21", "2026-11-23"]
    assert query(wh, "SELECT export_date, file, resolution FROM raw.refused_exports") == [
        (date(2026, 11, 22), "orders.csv", "superseded by full export 2026-11-23")
    ]

    # The marts equal those of nights 1 and 3 without night 2.
    clean = tmp_path / "clean"
    clean_wh = copy_night(hand_night, clean)
    shutil.copytree(exports / "2026-11-23", clean / "exports" / "2026-11-23")
    assert run_job(clean / "exports", clean_wh).success
    for table in MART_TABLES:
        assert table_bytes(wh, f"marts.{table}") == table_bytes(clean_wh, f"marts.{table}")

    # Unchanged, the refused folder is not tried again ...
    result = run_job(exports, wh)
    assert result.success and exports_in_raw(wh) == ["2026-11-21", "2026-11-23"]
    # ... a fixed re-delivery is ingested like any late export.
    shutil.copyfile(FIXTURE / "orders.csv", bad / "orders.csv")
    write_manifest(bad, "full")
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    assert exports_in_raw(wh) == ["2026-11-21", "2026-11-22", "2026-11-23"]
    assert query(wh, "SELECT count(*) FROM raw.refused_exports") == [(0,)]


def test_refused_incremental_export_blocks_until_a_full_one_clears_it(nights):
    exports, wh, add = nights
    bad = add("2026-11-22", "incremental", bad=True)
    add("2026-11-23", "incremental")
    before = sha256(wh)
    with DagsterInstance.ephemeral() as instance:
        result = run_job(exports, wh, instance=instance)
        assert not result.success
        (message,) = failure_messages(result)
        assert message.startswith(f"Export {bad} refused: {BAD_REASON} (incremental export).")
        assert "blocked since 2026-11-22, 1 export(s) waiting behind it (2026-11-23)" in message
        assert "--skip-export 2026-11-22" in message
        assert sha256(wh) == before
        # The alert says which data the analysts still see.
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
        context = build_run_status_sensor_context(
            sensor_name="nightly_failure_alert",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"alerts": AlertWebhook(), "published": PublishedWarehouse(path=str(wh))},
        ).for_run_failure()
        summary = failure_summary(context, PublishedWarehouse(path=str(wh)).as_of_date())
    assert summary["published_as_of"] == "2026-11-21"
    assert "analysts still see data as of 2026-11-21" in summary["text"]

    add("2026-11-24", "full")  # a good full export clears the block
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    # 2026-11-23 waited behind the refused one and went in once the block cleared.
    assert exports_in_raw(wh) == ["2026-11-21", "2026-11-23", "2026-11-24"]
    assert [
        (str(d), r) for d, r in query(wh, "SELECT export_date, resolution FROM raw.refused_exports")
    ] == [("2026-11-22", "superseded by full export 2026-11-24")]


def test_explicit_skip_lets_the_next_night_through_and_is_recorded(nights):
    exports, wh, add = nights
    add("2026-11-22", "incremental", bad=True)
    add("2026-11-23", "incremental")
    config = {
        "ops": {
            "ingest_exports": {
                "config": {
                    "skip_refused_exports": ["2026-11-22"],
                    "skipped_by": "ops on call",
                    "skip_note": "vendor cannot resend",
                }
            }
        }
    }
    result = run_job(exports, wh, run_config=config)
    assert result.success, failure_messages(result)
    assert exports_in_raw(wh) == ["2026-11-21", "2026-11-23"]
    ((day, file, resolution, by, note),) = query(
        wh, "SELECT export_date, file, resolution, resolved_by, note FROM raw.refused_exports"
    )
    assert (str(day), file, resolution, by, note) == (
        "2026-11-22",
        "orders.csv",
        "skipped by operator",
        "ops on call",
        "vendor cannot resend",
    )


def test_make_run_goes_past_an_older_refused_full_export(tmp_path, monkeypatch, capsys):
    exports = tmp_path / "exports"
    shutil.copytree(FIXTURE, exports / "2026-11-21")
    shutil.copytree(FIXTURE, exports / "2026-11-22")
    rewrite(exports / "2026-11-22" / "orders.csv", break_customer_refs)
    shutil.copytree(FIXTURE, exports / "2026-11-23")
    monkeypatch.setenv("CRM_EXPORTS_DIR", str(exports))
    monkeypatch.setenv("WAREHOUSE_PATH", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    assert nightly.main([]) == 0
    out = capsys.readouterr().out
    assert (
        f"WARNING: export 2026-11-22 was refused ({BAD_REASON}); "
        "superseded by full export 2026-11-23"
    ) in out
