"""The code location loads, is wired through asset keys, reads its settings in one place,
and its automation behaves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from pipelines.assets import RAW_KEYS, dbt_stages, ingest_exports
from pipelines.automation import new_export_sensor, nightly_schedule
from pipelines.dbt import DBT_LAUNCHER, NightlyDbtResource, SparkTarget, dbt_project
from pipelines.dbt_child import split_spark_remote
from pipelines.definitions import SETTINGS, definitions_from_env, make_definitions, setting
from pipelines.resources import (
    PROJECT_ROOT,
    ExportsResource,
    PublishedWarehouse,
    ReportsResource,
    SegmentationResource,
    WarehouseResource,
    store_path_for,
)
from pipelines.spark.engine import SparkResource
from tests.pipeline_runner import nightly_definitions

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "hand_export"


def test_definitions_load_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        defs = nightly_definitions(tmp_path / "exports", tmp_path / "w.duckdb")
        ingest = defs.resolve_job_def("nightly_ingest")
        refresh = defs.resolve_job_def("nightly_refresh")
    graph = defs.resolve_asset_graph()
    features = AssetKey(["marts", "customer_features"])
    segments = AssetKey(["marts", "customer_segments"])
    roi = AssetKey(["marts", "referral_roi_by_segment"])
    # raw -> dbt staging (dagster-dbt's source key) -> features -> segments -> ROI -> publish
    assert AssetKey(["raw", "orders"]) in graph.get(AssetKey(["staging", "stg_orders"])).parent_keys
    assert features in graph.get(segments).parent_keys
    assert roi in graph.get(AssetKey(["warehouse", "published"])).parent_keys
    assert segments in {
        k for key in graph.get(roi).parent_keys for k in [key, *graph.get(key).parent_keys]
    }
    # a night is two jobs: the raw assets (with their checks), then everything else
    ingested = ingest.asset_layer.executable_asset_keys
    refreshed = refresh.asset_layer.executable_asset_keys
    assert ingested == set(RAW_KEYS)
    assert not ingested & refreshed
    assert ingested | refreshed == graph.materializable_asset_keys
    assert len(refreshed) >= 25
    # every warehouse writer is in one pool
    for key in (features, segments, AssetKey(["raw", "orders"])):
        assert graph.get(key).pools == {"duckdb_warehouse"}
    checks = {c.name for c in graph.asset_check_keys}
    assert {"gx_raw_orders", "gx_marts_customer_features"} <= checks


def test_every_dbt_input_is_an_asset_the_job_builds(tmp_path):
    """dagster-dbt's default keys ([source, table] of a source, [schema, model] of a model)
    meet the keys of the Python assets that write those tables: no dbt asset waits for an
    external asset that nothing materialises."""
    graph = nightly_definitions(tmp_path / "e", tmp_path / "w.duckdb").resolve_asset_graph()
    parents = {p for key in graph.materializable_asset_keys for p in graph.get(key).parent_keys}
    assert parents <= graph.materializable_asset_keys, parents - graph.materializable_asset_keys
    manifest = json.loads(dbt_project().manifest_path.read_text())
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model":
            assert (
                AssetKey([node["config"]["schema"], node["name"]])
                in graph.materializable_asset_keys
            )
    assert {AssetKey(["history", "segment_spells"]), AssetKey(["raw", "fx_rates"])} <= parents


def test_every_model_is_in_exactly_one_stage():
    """The second stage is tag:post_segmentation, the first everything else: a model added
    anywhere is built, and in one stage only."""
    project = dbt_project()
    manifest = json.loads(project.manifest_path.read_text())
    models = {
        AssetKey([n["config"]["schema"], n["name"]]): n["tags"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
    }
    features, roi = dbt_stages(project)
    assert not set(features.keys) & set(roi.keys)
    assert set(features.keys) | set(roi.keys) == set(models)
    assert {k for k, tags in models.items() if "post_segmentation" in tags} == set(roi.keys)
    assert AssetKey(["marts", "customer_features"]) in features.keys
    assert AssetKey(["marts", "segment_history"]) in roi.keys


def test_schedule_is_nightly_at_two(tmp_path):
    schedule = nightly_schedule()
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "nightly_ingest"
    # It runs the newest export, made a partition first (a schedule cannot ask for one).
    exports = tmp_path / "exports"
    with instance_for_test() as instance:  # a schedule needs an instance it can refer to
        resources = {"exports": ExportsResource(path=str(exports))}
        # Each context in a `with`: it opens its own instance from the test's, which sets
        # Dagster's current state storage until the context is closed; left open, later
        # tests on this worker resolve definitions against an instance that is gone.
        with build_schedule_context(instance=instance, resources=resources) as context:
            skip = schedule(context)
        assert isinstance(skip, SkipReason)
        for day in ("2026-11-21", "2026-11-22"):
            shutil.copytree(FIXTURE / "2026-11-21", exports / day)
        with build_schedule_context(instance=instance, resources=resources) as context:
            request = schedule(context)
        assert (request.partition_key, request.tags["export_date"]) == ("2026-11-22",) * 2
        assert instance.get_dynamic_partitions("export_date") == ["2026-11-21", "2026-11-22"]


def _clear_settings(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_without_settings_every_resource_takes_the_readme_default(monkeypatch):
    _clear_settings(monkeypatch)
    monkeypatch.setenv("BASE_CURRENCY", "")  # empty counts as unset
    defs = definitions_from_env()
    r = defs.resources
    assert r["exports"].folder == PROJECT_ROOT / "data" / "exports"
    assert (r["exports"].bad_row_threshold, r["exports"].currency) == (0.05, "USD")
    assert r["exports"].email_hash_salt == "referral-segments-sample-salt"
    assert r["published"].published_path == PROJECT_ROOT / "data" / "warehouse.duckdb"
    assert r["reports"].folder == PROJECT_ROOT / "data" / "reports"
    assert r["reports"].memory_limit == "1GB"
    warehouse = r["warehouse"]
    assert (warehouse.path, warehouse.lock_timeout_s, warehouse.memory_limit) == (
        "data/warehouse.duckdb",
        3600.0,
        "1GB",
    )
    assert warehouse.gx_compact_min_rows == 100_000
    assert r["segmentation"].config().k_min == 3
    assert r["dbt"].dbt_vars(Path("/w/pipeline/store.duckdb")) == {
        "base_currency": "USD",
        "duckdb_path": "store.duckdb",
        "duckdb_memory_limit": "1GB",
    }
    assert r["alerts"].url == ""
    spark = r["spark"]
    assert (spark.engine, spark.remote, spark.lake_dir) == ("duckdb", "", "")
    assert (spark.master, spark.driver_memory, spark.enabled) == ("local[2]", "3g", False)
    assert defs.resolve_schedule_def("nightly_schedule").cron_schedule == "0 2 * * *"
    assert defs.resolve_sensor_def("new_export_sensor").minimum_interval_seconds == 60
    # the resources make_definitions falls back on have the same defaults
    bare = {
        "exports": ExportsResource(),
        "warehouse": WarehouseResource(),
        "published": PublishedWarehouse(),
        "reports": ReportsResource(),
        "segmentation": SegmentationResource(),
        "spark": SparkResource(),
    }
    for key, resource in bare.items():
        assert dict(resource) == dict(r[key]), key


def test_settings_come_from_the_environment_through_env_vars(monkeypatch, tmp_path):
    values = {
        "CRM_EXPORTS_DIR": str(tmp_path / "exports"),
        "WAREHOUSE_PATH": "elsewhere/w.duckdb",  # relative: from the project root
        "PIPELINE_STORE_DIR": str(tmp_path / "private"),
        "REPORTS_DIR": str(tmp_path / "reports"),
        "WAREHOUSE_LOCK_TIMEOUT_S": "12.5",
        "BAD_ROW_THRESHOLD": "0.2",
        "BASE_CURRENCY": " gbp",
        "EMAIL_HASH_SALT": "pepper",
        "NIGHTLY_CRON": "30 4 * * 1-5",
        "NIGHTLY_TIMEZONE": "Europe/Paris",
        "FRESHNESS_DEADLINE_HOURS": "4",
        "SEGMENT_K_MIN": "2",
        "SEGMENT_K_MAX": "5",
        "SEGMENT_MIN_SHARE": "0.05",
        "SEGMENT_SEED": "7",
        "SEGMENT_RESCAN_DAYS": "7",
        "SEGMENT_RESCAN_SILHOUETTE_DROP": "0.02",
        "DBT_VARS": '{"gross_margin": 0.6}',
        "WAREHOUSE_MEMORY_LIMIT": "3GB",
        "DBT_DUCKDB_MEMORY_LIMIT": "2GB",
        "GX_COMPACT_MIN_ROWS": "10",
        "RAW_RETENTION_DAYS": "400",
        "EXPORT_SENSOR_INTERVAL_S": "15",
        "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "WAREHOUSE_ENGINE": "spark",
        "SPARK_REMOTE": "sc://spark.example:15002",
        "SPARK_LAKE_DIR": str(tmp_path / "lake"),
        "SPARK_MASTER": "local[4]",
        "SPARK_DRIVER_MEMORY": "8g",
    }
    assert set(values) == set(SETTINGS)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    defs = definitions_from_env()
    r = defs.resources
    warehouse = r["warehouse"]
    # Dagster resolves these when a run starts; the UI shows the variable, not the value.
    assert warehouse.path.env_var_name == "WAREHOUSE_PATH"
    assert warehouse.memory_limit.env_var_name == "WAREHOUSE_MEMORY_LIMIT"
    assert r["reports"].memory_limit.env_var_name == "WAREHOUSE_MEMORY_LIMIT"
    assert warehouse.gx_compact_min_rows.env_var_name == "GX_COMPACT_MIN_ROWS"
    assert r["alerts"].url.env_var_name == "ALERT_WEBHOOK_URL"
    assert r["exports"].email_hash_salt.env_var_name == "EMAIL_HASH_SALT"  # a secret
    assert warehouse.lock_timeout_s == 12.5  # Dagster has no float EnvVar: read at load
    exports = r["exports"].process_config_and_initialize()
    assert (exports.folder, exports.bad_row_threshold, exports.currency) == (
        tmp_path / "exports",
        0.2,
        "GBP",
    )
    assert exports.email_hash_salt == "pepper"
    published = r["published"].process_config_and_initialize()
    assert published.published_path == PROJECT_ROOT / "elsewhere" / "w.duckdb"
    assert warehouse.store_dir.env_var_name == "PIPELINE_STORE_DIR"
    assert store_path_for(published.published_path, str(tmp_path / "private")) == (
        tmp_path / "private" / "store.duckdb"
    )
    reports = r["reports"].process_config_and_initialize()
    assert (reports.folder, reports.currency) == (tmp_path / "reports", "GBP")
    segmentation = r["segmentation"].process_config_and_initialize().config()
    assert (segmentation.k_min, segmentation.k_max, segmentation.min_share) == (2, 5, 0.05)
    assert segmentation.seed == 7
    assert (segmentation.rescan_days, segmentation.rescan_silhouette_drop) == (7, 0.02)
    with r["spark"].process_config_and_initialize_cm() as spark:
        assert spark.enabled
        assert (spark.remote, spark.master, spark.driver_memory) == (
            "sc://spark.example:15002",
            "local[4]",
            "8g",
        )
        assert spark.lake(tmp_path / "private") == tmp_path / "lake"
    assert r["spark"].engine.env_var_name == "WAREHOUSE_ENGINE"
    dbt = r["dbt"].process_config_and_initialize()
    assert dbt.dbt_vars(Path("/w/pipeline/store.duckdb")) == {
        "base_currency": "GBP",
        "gross_margin": 0.6,
        "duckdb_path": "store.duckdb",
        "duckdb_memory_limit": "2GB",
    }
    assert dbt.dbt_executable == DBT_LAUNCHER
    assert r["alerts"].process_config_and_initialize().url == "http://127.0.0.1:9/hook"
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        "30 4 * * 1-5",
        "Europe/Paris",
    )
    assert defs.resolve_sensor_def("new_export_sensor").minimum_interval_seconds == 15
    published = defs.resolve_asset_graph().get(AssetKey(["warehouse", "published"]))
    policy = published.freshness_policy  # due FRESHNESS_DEADLINE_HOURS after the schedule
    assert (policy.deadline_cron, policy.timezone) == ("30 8 * * 1-5", "Europe/Paris")
    assert setting("CRM_EXPORTS_DIR") == str(tmp_path / "exports")


def test_readme_configuration_table_is_the_settings_table():
    """Every variable the code location reads is in the README with the same default; the
    table's other rows are read by Dagster or `make run` themselves."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    documented: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        names_cell, default_cell = row.split("|")[1:3]
        names = re.findall(r"`([A-Z0-9_]+)`", names_cell)
        defaults = re.findall(r"`([^`]*)`", default_cell) or [""] * len(names)
        assert len(names) == len(defaults), row
        documented.update(zip(names, defaults, strict=True))
    others = {"DAGSTER_HOME", "NIGHTLY_LOG_LEVEL", "SAMPLE_CUSTOMERS"}
    assert set(documented) == set(SETTINGS) | others
    assert {name: documented[name] for name in SETTINGS} == SETTINGS


def test_sensor_requests_a_run_for_a_new_export_once(tmp_path):
    exports = tmp_path / "exports"
    resources = {
        "exports": ExportsResource(path=str(exports)),
        "published": PublishedWarehouse(path=str(tmp_path / "w.duckdb")),
    }
    sensor = new_export_sensor()

    def tick(instance, cursor=None):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return sensor(ctx)

    def added(result: SensorResult) -> list[str]:
        return [k for r in result.dynamic_partitions_requests for k in r.partition_keys]

    with DagsterInstance.ephemeral() as instance:
        assert isinstance(tick(instance), SkipReason)  # no export yet
        shutil.copytree(FIXTURE / "2026-11-21", exports / "2026-11-21")
        result = tick(instance)
        (request,) = result.run_requests
        assert isinstance(request, RunRequest)
        assert request.run_key == "export-2026-11-21"
        assert (request.partition_key, request.tags["export_date"]) == ("2026-11-21", "2026-11-21")
        assert added(result) == ["2026-11-21"]  # the export date becomes a partition
        assert result.cursor == "2026-11-21"
        instance.add_dynamic_partitions("export_date", added(result))  # as the daemon does
        again = tick(instance, result.cursor)
        assert not again.run_requests and again.skip_reason and added(again) == []
        shutil.copytree(FIXTURE / "2026-11-21", exports / "2026-11-22")
        nxt = tick(instance, result.cursor)
        assert [r.run_key for r in nxt.run_requests] == ["export-2026-11-22"]
        assert added(nxt) == ["2026-11-22"]


def test_dbt_vars_take_base_currency_then_dbt_vars_then_the_run_database():
    project = dbt_project()
    dbt = NightlyDbtResource.for_project(
        project, base_currency="gbp", vars_json='{"gross_margin": 0.6, "base_currency": "EUR"}'
    )
    assert dbt.build_args(Path("/w/pipeline/store.duckdb"), full_refresh=True) == [
        "build",
        "--exclude-resource-type",
        "unit_test",
        "--indirect-selection",
        "buildable",
        "--full-refresh",
        "--vars",
        '{"base_currency": "EUR", "duckdb_memory_limit": "1GB", '
        '"duckdb_path": "store.duckdb", "gross_margin": 0.6}',
        "--workdir",  # the launcher's: dbt runs in the store's folder
        "/w/pipeline",
        "--bind-to-parent",  # the launcher's: this process, which starts dbt
        str(os.getpid()),
    ]
    plain = NightlyDbtResource.for_project(project, base_currency="gbp")
    assert plain.dbt_vars(Path("/s/store.duckdb")) == {
        "base_currency": "GBP",
        "duckdb_path": "store.duckdb",
        "duckdb_memory_limit": "1GB",
    }
    with pytest.raises(ValueError, match="JSON object"):
        NightlyDbtResource.for_project(project, vars_json="[1]").dbt_vars(Path("/b"))
    # WAREHOUSE_ENGINE=spark: the profile's spark target, told the URL and the night's prefix
    on_spark = plain.build_args(
        Path("/s/store.duckdb"),
        spark=SparkTarget(url="sc://h:15002", schema_prefix="n0123456789ab_"),
    )
    assert on_spark[5] == "--vars"
    assert on_spark[7:9] == ["--spark-remote", "sc://h:15002"]
    assert (plain.on_spark().target, plain.target) == ("spark", "dev")
    assert json.loads(on_spark[6]) == {
        "base_currency": "GBP",
        "duckdb_path": "store.duckdb",
        "duckdb_memory_limit": "1GB",
        "schema_prefix": "n0123456789ab_",
    }
    # the launcher takes the URL for dbt's environment (SPARK_REMOTE), dbt the rest
    assert split_spark_remote(on_spark) == ("sc://h:15002", [*on_spark[:7], *on_spark[9:]])
    assert split_spark_remote(["build"]) == (None, ["build"])


def test_dbt_version_is_the_installed_dbt_core_without_a_subprocess():
    """dagster-dbt would run `dbt --version` (3.7 s) once per run; the launcher runs this
    venv's dbt-core, whose version the resource reads from the package instead."""
    dbt = NightlyDbtResource.for_project(dbt_project())
    out = subprocess.run(
        [DBT_LAUNCHER, "--version"], capture_output=True, text=True, check=True
    ).stdout
    core = re.search(r"installed: (\d+\.\d+\.\d+)", out).group(1)
    assert str(dbt._cli_version) == core
    assert dbt._cli_version.major == 1  # dbt-core, not the fusion engine (>= 2)


# Run in a fresh interpreter.  Dagster is imported first: its own import runs `file -b
# <python>` (platform.architecture(), in its vendored croniter); what is guarded is ours.
IMPORT_PROBE = r"""
import json, os, sys
import dagster
import _posixsubprocess, subprocess

spawned = []

def record(name, real, arg):
    def wrapper(*args, **kwargs):
        spawned.append(f"{name} {args[arg]!r}"[:400])
        return real(*args, **kwargs)
    return wrapper

_posixsubprocess.fork_exec = record("fork_exec", _posixsubprocess.fork_exec, 0)
subprocess._fork_exec = record("fork_exec", subprocess._fork_exec, 0)
subprocess.Popen._execute_child = record("Popen", subprocess.Popen._execute_child, 1)
for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve"):
    if hasattr(os, name):
        setattr(os, name, record("os." + name, getattr(os, name), 0))
before = dict(os.environ)
import pipelines.definitions
imported = list(spawned)
changed = sorted(k for k in before.keys() | os.environ.keys() if before.get(k) != os.environ.get(k))
pipelines.definitions.defs().resolve_asset_graph()
print(json.dumps({"import": imported, "environ": changed, "load": spawned[len(imported):]}))
"""


def test_importing_the_code_location_starts_no_process_and_changes_no_environment():
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_IS_DEV_CLI"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["import"] == []
    assert report["environ"] == []  # PATH included
    # Loading the definitions outside `dg dev` runs no dbt (dbt's manifest class may start
    # multiprocessing's resource tracker: not a command of ours).
    ours = [c for c in report["load"] if re.search(r"referral-segments-dbt|/dbt'", c)]
    assert ours == []


def test_code_location_loads_like_dg_dev_without_an_activated_venv(tmp_path):
    """Under `dg dev` the definitions parse the dbt project again, with the venv's dbt even
    when the venv is not on PATH.  In a copy of the code, so the project's own manifest,
    which the runs of other tests read as they start, is never rewritten under them."""
    repo = tmp_path / "repo"
    skip = shutil.ignore_patterns("target", "logs", "__pycache__", "*.duckdb")
    for part in ("pipelines", "dbt_project", "expectations"):
        shutil.copytree(ROOT / part, repo / part, ignore=skip)
    manifest = repo / "dbt_project" / "target" / "manifest.json"
    manifest.parent.mkdir()
    shutil.copyfile(dbt_project().manifest_path, manifest)
    before = manifest.stat().st_mtime_ns
    env_vars = {
        "PATH": "/usr/bin:/bin",
        "DAGSTER_IS_DEV_CLI": "1",
        "HOME": str(repo),
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pipelines, pipelines.definitions as d; print(pipelines.__file__); "
            "print(len(d.defs().resolve_asset_graph().materializable_asset_keys))",
        ],
        cwd=repo,
        env=env_vars,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *_, loaded_from, assets = done.stdout.strip().splitlines()
    assert Path(loaded_from).is_relative_to(repo)  # the copy's code, the copy's project
    assert int(assets) >= 30
    assert manifest.stat().st_mtime_ns > before  # parsed again, through the launcher


def test_ui_materialisations_run_in_one_process(tmp_path):
    """`Materialize all` in the UI uses the implicit asset job.  With a process per step
    each step's resource started from a fresh copy of the published file and discarded it
    at the end (the run failed at the first GX check): every job runs in one process."""
    defs = nightly_definitions(tmp_path, tmp_path / "w.duckdb")
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    for job in ("nightly_ingest", "nightly_refresh"):
        assert defs.resolve_job_def(job).executor_def.name == "in_process"


def test_a_run_without_the_publish_asset_says_its_work_was_discarded(tmp_path):
    exports = tmp_path / "exports"
    shutil.copytree(FIXTURE, exports)
    warehouse = tmp_path / "w.duckdb"
    instance = DagsterInstance.ephemeral()
    defs = make_definitions(
        exports=ExportsResource(path=str(exports)),
        warehouse=WarehouseResource(path=str(warehouse)),
        reports=ReportsResource(path=str(tmp_path / "reports")),
    )
    instance.add_dynamic_partitions("export_date", ["2026-11-21"])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=list(ingest_exports.keys), instance=instance, partition_key="2026-11-21"
    )
    assert result.success
    assert not warehouse.exists()  # nothing published
    said = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if "ended without publishing" in e.user_message
    ]
    assert len(said) == 1 and str(warehouse) in said[0]
