"""The night's story in the Dagster UI (issue #13, operations): owners, freshness, which
automation runs by default, metadata on the asset it describes, per-export partitions and a
structured refusal, read back through Dagster's own API from real runs.

Night 1 (2026-11-21) is the hand fixture with one order of a negative amount (quarantined);
night 2 (2026-11-22) is the same export with 4 of its 20 order amounts unparseable (20% >
the 5% threshold), so it is refused. Both run on one Dagster instance, as the schedule
would run them.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventRecordsFilter,
    build_run_status_sensor_context,
)
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from pipelines.assets import EXPORT_DATES, RAW_KEYS
from pipelines.automation import freshness_policy, refresh_after_ingest
from pipelines.catalog import MARTS_OWNERS, PIPELINE_OWNERS
from pipelines.definitions import Automation
from pipelines.ingest.backlog import REFUSED_ROWS_FILE
from pipelines.quality import RAW_TABLES
from tests.pipeline_runner import failure_messages, nightly_definitions, run_job, store_of
from tests.test_safety import rewrite, sha256

FIXTURE = Path(__file__).parent / "fixtures" / "hand_export" / "2026-11-21"
GOOD, REFUSED = "2026-11-21", "2026-11-22"
DBT_STAGES = {"dbt_customer_features", "dbt_referral_roi"}
LATEST_STATE = [
    AssetKey(["warehouse", "published"]),
    AssetKey(["marts", "referral_roi_by_segment"]),
    AssetKey(["marts", "segment_profiles"]),
]


def negative_amount(rows):
    return rows + [["O999", "001", "2026-11-01T10:00:00Z", "-5", "completed", "0"]]


def unparseable_amounts(rows):
    """4 of the 20 orders (lines 3, 5, 7, 9) get an amount that is not a number."""
    return [rows[0]] + [
        r[:3] + ["12,50 EUR"] + r[4:] if i in (1, 3, 5, 7) else r for i, r in enumerate(rows[1:])
    ]


def meta(event, key: str):
    return event.asset_materialization.metadata[key].value


def materialization(result, *path: str):
    (event,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == list(path)
        and e.step_materialization_data.materialization.partition in (None, GOOD)
    ]
    return event


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """One instance, a good night then a refused one: (instance, results, warehouse, exports,
    the published file's sha256 after night 1)."""
    root = tmp_path_factory.mktemp("operations")
    exports, wh = root / "exports", root / "warehouse.duckdb"
    shutil.copytree(FIXTURE, exports / GOOD)
    rewrite(exports / GOOD / "orders.csv", negative_amount)
    # Not `with instance:`, which sets Dagster's current state storage in a context
    # variable for as long as this module fixture lives: later tests on this worker then
    # resolve definitions against this instance after it is gone.
    instance = DagsterInstance.ephemeral()
    try:
        good = run_job(exports, wh, instance=instance)
        assert good.success, failure_messages(good)
        published = sha256(wh)
        shutil.copytree(FIXTURE, exports / REFUSED)
        rewrite(exports / REFUSED / "orders.csv", unparseable_amounts)
        refused = run_job(exports, wh, instance=instance)
        assert not refused.success
        yield {
            "instance": instance,
            "good": good,
            "refused": refused,
            "warehouse": wh,
            "exports": exports,
            "published_sha": published,
        }
    finally:
        instance.dispose()


# -- definitions ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    root = tmp_path_factory.mktemp("defs")
    return nightly_definitions(root / "exports", root / "w.duckdb")


def test_every_python_asset_has_its_owner_from_the_catalog(defs):
    python_assets = [
        a
        for a in defs.assets
        if isinstance(a, AssetsDefinition) and a.node_def.name not in DBT_STAGES
    ]
    keys = {spec.key for a in python_assets for spec in a.specs}
    assert AssetKey(["reports", "referral_roi"]) in keys and set(RAW_KEYS) <= keys
    for a in python_assets:
        for spec in a.specs:
            analysts = spec.key.path[0] in ("marts", "reports")
            assert list(spec.owners) == (MARTS_OWNERS if analysts else PIPELINE_OWNERS), spec.key


def test_published_and_every_mart_are_due_six_hours_after_the_schedule(defs):
    graph = defs.resolve_asset_graph()
    due = [k for k in graph.materializable_asset_keys if k.path[0] == "marts"]
    assert AssetKey(["marts", "referral_roi_by_segment"]) in due  # a dbt mart
    assert AssetKey(["marts", "segment_profiles"]) in due  # a Python mart
    for key in [*due, AssetKey(["warehouse", "published"])]:
        policy = graph.get(key).freshness_policy
        assert policy is not None, key
        assert (policy.deadline_cron, policy.lower_bound_delta) == (
            "0 8 * * *",
            timedelta(hours=6),
        )
    assert graph.get(AssetKey(["raw", "orders"])).freshness_policy is None  # per export


def test_freshness_deadline_follows_the_schedule_setting():
    late = freshness_policy("30 22 * * *", "Europe/Paris", 4)
    assert (late.deadline_cron, late.timezone) == ("30 2 * * *", "Europe/Paris")
    weekdays = freshness_policy("30 4 * * 1-5", "UTC", 6)
    assert weekdays.deadline_cron == "30 10 * * 1-5"
    # crossing midnight on some days only: a window of a day plus the deadline
    window = freshness_policy("0 22 * * 1-5", "UTC", 6).fail_window
    assert window.to_timedelta() == timedelta(hours=30)
    with pytest.raises(ValueError, match="FRESHNESS_DEADLINE_HOURS"):
        freshness_policy("0 2 * * *", "UTC", 0)
    assert Automation().freshness_deadline_hours == 6


def test_alert_and_schedule_run_by_default_the_export_sensor_does_not(defs):
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    for running in ("nightly_failure_alert", "nightly_refresh_after_ingest"):
        assert defs.resolve_sensor_def(running).default_status == DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("new_export_sensor").default_status == (
        DefaultSensorStatus.STOPPED
    )
    for automation in (
        schedule,
        defs.resolve_sensor_def("new_export_sensor"),
        defs.resolve_sensor_def("nightly_failure_alert"),
        defs.resolve_sensor_def("nightly_refresh_after_ingest"),
    ):
        assert automation.description and "default" in automation.description


def test_raw_assets_are_partitioned_by_export_date_and_the_rest_is_not(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        expected = EXPORT_DATES if key in RAW_KEYS else None
        assert graph.get(key).partitions_def == expected, key


# -- a good night --------------------------------------------------------------------------


def test_each_raw_asset_reports_its_own_table(nights):
    good = nights["good"]
    con = duckdb.connect(str(store_of(nights["warehouse"])), read_only=True)
    try:
        for key in RAW_KEYS:
            mat = materialization(good, *key.path)
            (count,) = con.execute(f"SELECT count(*) FROM raw.{key.path[-1]}").fetchone()
            assert mat.metadata["dagster/row_count"].value == count, key
            assert mat.partition == GOOD
    finally:
        con.close()
    orders = materialization(good, "raw", "orders").metadata
    assert orders["rows_loaded_this_run"].value == 20
    assert orders["rows_quarantined_this_run"].value == 1
    (reason,) = orders["quarantine_reasons"].value.records
    assert reason.data == {"reason": "out of range (must be >= 0)", "column": "amount", "rows": 1}
    customers = materialization(good, "raw", "customers").metadata
    assert customers["rows_quarantined_this_run"].value == 0
    assert customers["quarantine_reasons"].value.records == []
    # the run-wide numbers are on raw/exports only
    assert "exports_ingested" not in customers
    (export,) = materialization(good, "raw", "exports").metadata["exports_ingested"].value.records
    assert export.data["export_date"] == GOOD and export.data["rows_quarantined"] == 1


def test_segmentation_metadata_sits_on_segment_profiles_only(nights):
    good, wh = nights["good"], nights["warehouse"]
    profiles = materialization(good, "marts", "segment_profiles").metadata
    segments = materialization(good, "marts", "customer_segments").metadata
    assert "k" in profiles and "silhouette" in profiles
    assert "k" not in segments and "segments" not in segments
    con = duckdb.connect(str(wh), read_only=True)
    try:
        expected = con.execute(
            "SELECT segment_id, segment_name, customers, share FROM marts.segment_profiles "
            "ORDER BY customers DESC, segment_id"
        ).fetchall()
        (customers,) = con.execute("SELECT count(*) FROM marts.customer_segments").fetchone()
    finally:
        con.close()
    assert [tuple(r.data.values()) for r in profiles["segments"].value.records] == expected
    assert profiles["k"].value == len([r for r in expected if r[0] != "prospects"])
    assert segments["dagster/row_count"].value == customers


def test_published_asset_carries_the_roi_per_segment_of_the_mart(nights):
    good, wh = nights["good"], nights["warehouse"]
    con = duckdb.connect(str(wh), read_only=True)
    try:
        mart = con.execute(
            "SELECT segment_id, segment_name, customers, roi::DOUBLE, referral_cac::DOUBLE, "
            "paid_cac::DOUBLE, low_confidence FROM marts.referral_roi_by_segment ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    table = materialization(good, "warehouse", "published").metadata["roi_by_segment"].value
    rows = [
        tuple(r.data[c] for c in [col.name for col in table.schema.columns]) for r in table.records
    ]
    assert len(rows) == len(mart) >= 2  # one row per segment, and `all`
    assert rows == mart
    observed = (
        nights["instance"]
        .fetch_observations(AssetKey(["marts", "referral_roi_by_segment"]), limit=10)
        .records
    )
    tables = [
        o.asset_observation.metadata["roi_by_segment"].value
        for o in observed
        if o.run_id == good.run_id and "roi_by_segment" in o.asset_observation.metadata
    ]
    assert len(tables) == 1 and tables[0].records == table.records


def test_raw_checks_ran_in_the_ingest_step_on_the_nights_partition(nights):
    """The GX raw checks are check specs of the ingest step, evaluated for its partition."""
    ingest, refresh = nights["good"].runs
    raw = {e.asset_check_key.name: e for e in ingest.get_asset_check_evaluations()}
    assert set(raw) == {f"gx_raw_{k.path[-1]}" for k in RAW_KEYS if k.path[-1] in RAW_TABLES}
    assert all(e.partition == GOOD for e in raw.values())
    assert raw["gx_raw_orders"].passed  # the negative amount was quarantined, not loaded
    ran = {e.step_key for e in ingest.all_events if e.step_key}
    assert ran == {"ingest_exports"}
    refreshed = {e.asset_check_key.name for e in refresh.get_asset_check_evaluations()}
    assert "gx_marts_referral_roi_by_segment" in refreshed and not refreshed & set(raw)


def test_a_successful_ingest_run_starts_the_refresh(nights):
    """What the daemon does after the schedule's run: the run-status sensor asks for
    nightly_refresh once per ingest run, tagged with the ingest's export date."""
    ingest, _ = nights["good"].runs
    success = next(e for e in ingest.all_events if e.event_type == DagsterEventType.RUN_SUCCESS)
    context = build_run_status_sensor_context(
        sensor_name="nightly_refresh_after_ingest",
        dagster_event=success,
        dagster_instance=nights["instance"],
        dagster_run=ingest.dagster_run,
    )
    request = refresh_after_ingest(context)
    assert request.run_key == f"after-{ingest.run_id}"
    assert request.tags == {"export_date": GOOD}
    assert refresh_after_ingest.job_name == "nightly_refresh"


# -- then a refused night ------------------------------------------------------------------


def test_refused_night_fails_its_own_partition_only(nights):
    instance, refused = nights["instance"], nights["refused"]
    assert refused.dagster_run.tags["export_date"] == REFUSED
    assert refused.dagster_run.tags["dagster/partition"] == REFUSED
    good_ingest, good_refresh = nights["good"].runs
    assert good_ingest.dagster_run.job_name == "nightly_ingest"
    assert good_ingest.dagster_run.tags["dagster/partition"] == GOOD
    assert good_refresh.dagster_run.job_name == "nightly_refresh"
    assert good_refresh.dagster_run.tags["export_date"] == GOOD
    assert [r.dagster_run.job_name for r in refused.runs] == ["nightly_ingest"]
    assert sha256(nights["warehouse"]) == nights["published_sha"]  # analysts' file unchanged
    assert set(instance.get_dynamic_partitions("export_date")) == {GOOD, REFUSED}
    for key in RAW_KEYS:
        status = instance.get_status_by_partition(key, [GOOD, REFUSED], EXPORT_DATES)
        assert status == {
            GOOD: AssetPartitionStatus.MATERIALIZED,
            REFUSED: AssetPartitionStatus.FAILED,
        }, key


def test_refused_partitions_raw_checks_say_they_were_not_evaluated(nights):
    """Not "Execution failed": each raw check of the refused partition has a result that
    names the refusal, and the good partition's evaluation stays in its history."""
    instance, refused = nights["instance"], nights["refused"]
    results = {e.asset_check_key.name: e for e in refused.get_asset_check_evaluations()}
    assert set(results) == {f"gx_raw_{t}" for t in RAW_TABLES}
    for name, e in results.items():
        assert e.partition == REFUSED and not e.passed, name
        assert e.severity == AssetCheckSeverity.ERROR
        assert e.description.startswith(f"Not evaluated: export {REFUSED} was refused at ingest")
        assert e.description.endswith(f"Analysts still see {GOOD}."), e.description
        meta = {k: v.value for k, v in e.metadata.items()}
        assert meta["column"] == "amount" and meta["file"] == "orders.csv", meta
    key = AssetCheckKey(AssetKey(["raw", "orders"]), "gx_raw_orders")
    runs = {nights["good"].runs[0].run_id, refused.run_id}
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    statuses = {r.partition: r.status.value for r in history if r.run_id in runs}
    assert statuses == {GOOD: "SUCCEEDED", REFUSED: "FAILED"}


def test_latest_state_assets_keep_last_nights_materialization_marked_still_current(nights):
    """What we chose (docs/decisions.md, "Dagster operations"): a night is an ingest run,
    then a refresh run only when ingest succeeded, so the refused night's run never planned
    the latest-state assets: Dagster has nothing to show as failed on them, their last
    materialization and last run stay night 1's, and an observation says they are still
    current as of the date analysts see."""
    instance, good, refused = nights["instance"], nights["good"], nights["refused"]
    for key in LATEST_STATE:
        (record,) = instance.get_asset_records([key])
        entry = record.asset_entry
        assert entry.last_materialization.run_id == good.run_id, key
        assert entry.last_run_id == good.run_id, key  # not planned by the refused run
        assert entry.last_failed_to_materialize_record is None, key
    for key in LATEST_STATE[:2]:
        (obs,) = [
            o.asset_observation.metadata
            for o in instance.fetch_observations(key, limit=10).records
            if o.run_id == refused.run_id
        ]
        assert obs["status"].value.startswith("still current")
        assert obs["analysts_see_as_of"].value == GOOD
        assert obs["refused_export"].value == REFUSED
    no_step_ran = {
        e.step_key
        for e in refused.all_events
        if e.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS)
    }
    assert no_step_ran == {"ingest_exports"}


def test_refusal_is_a_failure_with_structured_metadata(nights, tmp_path):
    refused, exports = nights["refused"], nights["exports"]
    (event,) = refused.get_step_failure_events()
    data = event.step_failure_data.user_failure_data
    md = {k: v.value for k, v in data.metadata.items()}
    assert md["folder"] == str(exports / REFUSED)
    assert (md["file"], md["column"], md["rule"]) == ("orders.csv", "amount", "unparseable money")
    assert (md["bad_rows"], md["rows_read"], md["bad_share"], md["threshold"]) == (4, 20, 0.2, 0.05)
    assert md["refused_export"] == REFUSED and md["analysts_see_as_of"] == GOOD
    assert [r.data["line"] for r in md["sample_lines"].records] == [3, 5, 7, 9]
    assert {r.data["value"] for r in md["sample_lines"].records} == {"12,50 EUR"}
    assert [r.data for r in md["rules"].records] == [
        {"column": "amount", "rule": "unparseable money", "rows": 4}
    ]
    # the query runs and shows the refused rows, original row included
    kept = store_of(nights["warehouse"]).parent / REFUSED_ROWS_FILE
    assert str(kept) in md["refused_rows_query"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    con = duckdb.connect(str(kept), read_only=True)
    try:
        rows = con.execute(
            "SELECT line_number, column_name, value, raw_row FROM refused_rows ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert [r[:3] for r in rows] == [(n, "amount", "12,50 EUR") for n in (3, 5, 7, 9)]
    assert all("12,50 EUR" in r[3] for r in rows)
    # and the command itself works as given, from any directory, with the CLI `make install`
    # puts in the venv
    (command,) = [line for line in md["refused_rows_query"].splitlines() if "duckdb" in line]
    shown = subprocess.run(
        command.replace(" -readonly ", " -csv -readonly ", 1),
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert [line.split(",")[:2] for line in shown.stdout.splitlines()[1:]] == [
        [str(n), "amount"] for n in (3, 5, 7, 9)
    ]
    assert data.description == failure_messages(refused)[0]
    assert data.description.startswith(f"Export {exports / REFUSED} refused: orders.csv: 4 of 20")
    assert f"analysts still see the previous night's tables (as of {GOOD})" in data.description


def test_the_failure_is_the_only_step_error_the_operator_reads(nights):
    """The raw checks run inside the ingest step, and the refresh is another run: a refused
    night is one failed step, then the run's failure; no "Not executing" cascade."""
    instance, refused = nights["instance"], nights["refused"]
    errors = [e for e in instance.all_logs(refused.run_id) if e.level >= 40]
    first = errors[0]
    assert first.dagster_event.event_type == DagsterEventType.STEP_FAILURE
    assert first.dagster_event.step_failure_data.error.message.startswith(
        "dagster._core.definitions.events.Failure: Export "
    )
    assert not [e for e in errors if "Not executing" in e.user_message]
    assert [e.dagster_event.event_type for e in errors] == [
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.RUN_FAILURE,
    ]
    failed_runs = instance.fetch_run_status_changes(
        EventRecordsFilter(DagsterEventType.RUN_FAILURE), limit=5
    ).records
    assert [r.run_id for r in failed_runs] == [refused.run_id]


def test_a_later_good_night_republishes_and_the_block_file_goes(nights, tmp_path):
    """Re-delivered, fixed: materialising the refused partition again ingests it."""
    instance, exports, wh = nights["instance"], nights["exports"], nights["warehouse"]
    shutil.copyfile(FIXTURE / "orders.csv", exports / REFUSED / "orders.csv")
    result = run_job(exports, wh, instance=instance)
    assert result.success, failure_messages(result)
    status = instance.get_status_by_partition(
        AssetKey(["raw", "orders"]), [GOOD, REFUSED], EXPORT_DATES
    )
    assert status[REFUSED] == AssetPartitionStatus.MATERIALIZED
    assert not (store_of(wh).parent / REFUSED_ROWS_FILE).exists()
