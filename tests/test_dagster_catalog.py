"""The night as the Dagster catalog tells it (issue #13): row counts, columns, owners, check
names and descriptions, groups.

One night runs on a copy of the hand fixture's first night (`hand_night`), with a Dagster
instance the tests then read through Dagster's API, as the UI does.  It is the second night
on the same exports, so the incremental staging models merge: their counts must still be
the tables' own.  Every number is compared with the table read independently, from the
analysts' file for what publishing copies there and from the pipeline's store otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from pipelines.catalog import MARTS_OWNERS, PIPELINE_OWNERS
from pipelines.dbt import FLOW_GROUPS, dbt_project
from pipelines.publish import PUBLISHED_SCHEMAS
from tests.pipeline_runner import (
    copy_night,
    failure_messages,
    nightly_definitions,
    run_job,
    store_of,
)

# A check name the UI shows whole: at most this long (the asset page shortens longer names
# in the middle, `accepted_range…are_rate__1__0`), and not cut by dbt (which replaces a
# generated name of 64 characters or more by its first 30 and an md5).
MAX_CHECK_NAME = 40
DBT_HASHED = re.compile(r"_[0-9a-f]{32}$")
DBT_STAGES = ("dbt_customer_features", "dbt_referral_roi")


@pytest.fixture(scope="module")
def night(hand_night: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("catalog")
    warehouse = copy_night(hand_night, root)
    instance = DagsterInstance.ephemeral()
    result = run_job(root / "exports", warehouse, instance=instance)
    assert result.success, failure_messages(result)
    defs = nightly_definitions(root / "exports", warehouse)
    manifest = json.loads(dbt_project().manifest_path.read_text())
    return {
        "instance": instance,
        "result": result,
        "defs": defs,
        "warehouse": warehouse,
        "manifest": manifest,
    }


def _dbt_assets(defs) -> list:
    return [a for a in defs.assets if getattr(a, "op", None) and a.op.name in DBT_STAGES]


def _dbt_models(manifest: dict[str, Any]) -> dict[AssetKey, dict[str, Any]]:
    return {
        AssetKey([n["schema"], n["alias"]]): n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["materialized"] != "ephemeral"
    }


def _file_of(night: dict[str, Any], schema: str) -> Path:
    return night["warehouse"] if schema in PUBLISHED_SCHEMAS else store_of(night["warehouse"])


def _read(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _latest_metadata(night: dict[str, Any], key: AssetKey) -> dict[str, Any]:
    event = night["instance"].get_latest_materialization_event(key)
    assert event is not None, f"{key.to_user_string()} was not materialised"
    return dict(event.asset_materialization.metadata)


def test_every_dbt_table_reports_its_row_count_and_real_location(night):
    models = _dbt_models(night["manifest"])
    assert {k for a in _dbt_assets(night["defs"]) for k in a.keys} == set(models)
    nonzero = 0
    for key, node in models.items():
        schema, table = key.path
        metadata = _latest_metadata(night, key)
        place = "warehouse" if schema in PUBLISHED_SCHEMAS else "store"
        assert metadata["dagster/table_name"].value == f"{place}.{schema}.{table}"
        if node["config"]["materialized"] == "view":
            assert "dagster/row_count" not in metadata  # counting would run the view
            continue
        (count,) = _read(_file_of(night, schema), f'SELECT count(*) FROM "{schema}"."{table}"')[0]
        assert metadata["dagster/row_count"].value == count, key.to_user_string()
        nonzero += count > 0
    # The hand fixture fills most tables; a run that measured nothing would show zeros.
    assert nonzero >= len(models) - 3


def test_dbt_tables_column_schema_is_the_tables_columns_with_yaml_descriptions(night):
    for key, node in _dbt_models(night["manifest"]).items():
        schema, table = key.path
        columns = _read(
            _file_of(night, schema),
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, table],
        )
        shown = _latest_metadata(night, key)["dagster/column_schema"].value.columns
        assert [(c.name, c.type) for c in shown] == columns, key.to_user_string()
        documented = {name.lower(): c["description"] for name, c in node["columns"].items()}
        for column in shown:
            assert column.description == (documented.get(column.name.lower()) or None)
        # Every model documents its columns: the catalog shows a description for each.
        assert all(c.description for c in shown), key.to_user_string()


def test_dbt_assets_have_owners_and_no_unserializable_metadata(night):
    for assets_def in _dbt_assets(night["defs"]):
        for spec in assets_def.specs:
            expected = MARTS_OWNERS if spec.key.path[0] == "marts" else PIPELINE_OWNERS
            assert list(spec.owners) == expected, spec.key.to_user_string()
            assert "dagster_dbt/project" not in spec.metadata
    metadata = _latest_metadata(night, AssetKey(["marts", "referral_roi_by_segment"]))
    assert not [k for k, v in metadata.items() if "(unserializable)" in str(v)]


def test_every_check_has_a_description_and_a_whole_name(night):
    graph = night["defs"].resolve_asset_graph()
    dbt_checks = {k for a in _dbt_assets(night["defs"]) for k in a.check_keys}
    tests = [n for n in night["manifest"]["nodes"].values() if n["resource_type"] == "test"]
    assert len(dbt_checks) == len(tests)
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        assert spec.description and spec.description.strip(), key
        assert len(key.name) <= MAX_CHECK_NAME, key
        assert not DBT_HASHED.search(key.name), key
    for key in dbt_checks:
        # Named in the YAML, not generated by dbt from the model's name and arguments.
        assert key.asset_key.path[-1] not in key.name, key
    share = graph.get_check_spec(
        AssetCheckKey(AssetKey(["marts", "referral_roi_by_segment"]), "share_rate_between_0_and_1")
    )
    assert share.description.startswith(
        "`share_rate` of marts.referral_roi_by_segment is between 0 and 1, bounds included"
    )
    gx = graph.get_check_spec(AssetCheckKey(AssetKey(["raw", "orders"]), "gx_raw_orders"))
    assert "expectations/raw_orders.json" in gx.description
    assert "raw.orders" in gx.description and "nothing is published" in gx.description


def test_every_dbt_check_ran_under_its_declared_name(night):
    """The names given in the YAML are the ones dbt reports: every declared check has an
    evaluation in the run (none fell back to an observation under another name)."""
    evaluated = {e.asset_check_key for e in night["result"].get_asset_check_evaluations()}
    dbt_checks = {k for a in _dbt_assets(night["defs"]) for k in a.check_keys}
    assert dbt_checks <= evaluated, sorted(str(k) for k in dbt_checks - evaluated)


def test_groups_are_the_flow_and_follow_it(night):
    specs = {s.key: s for s in night["defs"].resolve_all_asset_specs()}
    assert {s.group_name for s in specs.values()} == set(FLOW_GROUPS)
    expected = {
        ("staging", "stg_orders"): "staging",
        ("intermediate", "int_customer_orders"): "features",
        ("marts", "customer_features"): "features",
        ("marts", "segment_history"): "segments",
        ("marts", "segment_migrations"): "segments",
        ("intermediate", "int_customers_by_segment"): "referral_roi",
        ("marts", "referral_roi_by_segment"): "referral_roi",
    }
    for path, group in expected.items():
        assert specs[AssetKey(list(path))].group_name == group, path
    order = {g: i for i, g in enumerate(FLOW_GROUPS)}
    for key, spec in specs.items():
        for dep in spec.deps:
            if dep.asset_key in specs:
                upstream = specs[dep.asset_key].group_name
                assert order[upstream] <= order[spec.group_name], (dep.asset_key, key)


def test_a_stream_that_fails_while_dbt_runs_stops_dbt_before_waiting():
    """dagster-dbt failing on one of dbt's events ends the stream while dbt still writes
    its output: dbt is stopped first, else waiting for it would never end (found when a
    test's id differed between the targets); the stream's error is what the step raises."""
    from pipelines.dbt_metadata import with_table_metadata

    calls: list[str] = []

    def events():
        yield "an event before the failure"
        raise KeyError("test.referral_segments.unknown")

    stream = with_table_metadata(
        events(),
        {},
        connect=lambda: pytest.fail("nothing was built, so nothing is measured"),
        wait_for_dbt=lambda: calls.append("wait"),
        log=None,
        stop_dbt=lambda: calls.append("stop"),
    )
    reported = []
    with pytest.raises(KeyError, match="unknown"):
        for event in stream:
            reported.append(event)
    assert reported == ["an event before the failure"]  # what came is still reported
    assert calls == ["stop", "wait"]
