"""The code location loads, is wired through asset keys, and its automation behaves."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context

from pipelines.assets import ingest_exports
from pipelines.automation import new_export_sensor, nightly_schedule
from pipelines.definitions import make_definitions
from pipelines.resources import Settings
from tests.pipeline_runner import env

FIXTURE = Path(__file__).parent / "fixtures" / "hand_export"


def test_definitions_load_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        defs = make_definitions(Settings.from_env())
        job = defs.resolve_job_def("nightly_refresh")
    graph = defs.resolve_asset_graph()
    features = AssetKey(["marts", "customer_features"])
    segments = AssetKey(["marts", "customer_segments"])
    roi = AssetKey(["marts", "referral_roi_by_segment"])
    # raw -> dbt staging (via source meta) -> features -> segments -> ROI -> publish
    assert AssetKey(["raw", "orders"]) in graph.get(AssetKey(["staging", "stg_orders"])).parent_keys
    assert features in graph.get(segments).parent_keys
    assert roi in graph.get(AssetKey(["warehouse", "published"])).parent_keys
    assert segments in {
        k for key in graph.get(roi).parent_keys for k in [key, *graph.get(key).parent_keys]
    }
    assert len(job.asset_layer.executable_asset_keys) >= 30
    # every warehouse writer is in one pool
    for key in (features, segments, AssetKey(["raw", "orders"])):
        assert graph.get(key).pools == {"duckdb_warehouse"}
    checks = {c.name for c in graph.asset_check_keys}
    assert {"gx_raw_orders", "gx_marts_customer_features"} <= checks


def test_schedule_is_nightly_at_two():
    assert nightly_schedule.cron_schedule == "0 2 * * *"
    assert nightly_schedule.execution_timezone == "UTC"
    assert nightly_schedule.job_name == "nightly_refresh"


def test_sensor_requests_a_run_for_a_new_export_once(tmp_path):
    exports = tmp_path / "exports"
    with env(CRM_EXPORTS_DIR=str(exports), WAREHOUSE_PATH=str(tmp_path / "w.duckdb")):
        with DagsterInstance.ephemeral() as instance:
            ctx = build_sensor_context(instance=instance)
            assert isinstance(new_export_sensor(ctx), SkipReason)  # no export yet
            shutil.copytree(FIXTURE / "2026-11-21", exports / "2026-11-21")
            ctx = build_sensor_context(instance=instance)
            request = new_export_sensor(ctx)
            assert isinstance(request, RunRequest)
            assert request.run_key == "export-2026-11-21"
            assert ctx.cursor == "2026-11-21"
            again = new_export_sensor(build_sensor_context(instance=instance, cursor=ctx.cursor))
            assert isinstance(again, SkipReason)
            shutil.copytree(FIXTURE / "2026-11-21", exports / "2026-11-22")
            nxt = new_export_sensor(build_sensor_context(instance=instance, cursor=ctx.cursor))
            assert isinstance(nxt, RunRequest) and nxt.run_key == "export-2026-11-22"


def test_dbt_vars_take_base_currency_and_dbt_vars():
    from pipelines.dbt import dbt_vars

    with env(BASE_CURRENCY="gbp", DBT_VARS='{"gross_margin": 0.6, "base_currency": "EUR"}'):
        assert dbt_vars() == ["--vars", '{"base_currency": "EUR", "gross_margin": 0.6}']
    with env(BASE_CURRENCY="gbp", DBT_VARS=None):
        assert dbt_vars() == ["--vars", '{"base_currency": "GBP"}']
    with env(BASE_CURRENCY=None, DBT_VARS=None):
        assert dbt_vars() == []


def test_code_location_loads_like_dagster_dev_without_an_activated_venv():
    """`dagster dev` prepares the dbt project with `dbt` from PATH; the venv is not on it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env_vars = {
        "PATH": "/usr/bin:/bin",
        "DAGSTER_IS_DEV_CLI": "1",
        "HOME": str(root),
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
    }
    done = subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions as d; print(d.defs is not None)"],
        cwd=root,
        env=env_vars,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("True")


def test_ui_materialisations_run_in_one_process(tmp_path):
    """`Materialize all` in the UI uses the implicit asset job.  With a process per step
    each step's resource started from a fresh copy of the published file and discarded it
    at the end (the run failed at the first GX check): every job runs in one process."""
    with env(CRM_EXPORTS_DIR=str(tmp_path), WAREHOUSE_PATH=str(tmp_path / "w.duckdb")):
        defs = make_definitions(Settings.from_env())
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    assert defs.resolve_job_def("nightly_refresh").executor_def.name == "in_process"


def test_a_run_without_the_publish_asset_says_its_work_was_discarded(tmp_path):
    exports = tmp_path / "exports"
    shutil.copytree(FIXTURE, exports)
    warehouse = tmp_path / "w.duckdb"
    instance = DagsterInstance.ephemeral()
    with env(CRM_EXPORTS_DIR=str(exports), WAREHOUSE_PATH=str(warehouse)):
        defs = make_definitions(Settings.from_env())
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            asset_selection=list(ingest_exports.keys), instance=instance
        )
    assert result.success
    assert not warehouse.exists()  # nothing published
    assert not list(tmp_path.glob("w.duckdb.build*"))  # build copy discarded
    said = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if "ended without publishing" in e.user_message
    ]
    assert len(said) == 1 and str(warehouse) in said[0]
