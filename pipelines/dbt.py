"""The dbt project as Dagster sees it: project handle, translator and run arguments."""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from pipelines.resources import DBT_PROJECT_DIR, dbt_dies_with_parent

# dbt's profile reads the database path from this variable; parsing needs it set too.
os.environ.setdefault("DBT_DUCKDB_PATH", str(DBT_PROJECT_DIR / "target" / "parse.duckdb"))

# The venv's dbt even when the venv is not activated (make runs .venv/bin/python directly;
# `dagster dev` prepares the project with a plain `dbt` from PATH).
_SCRIPTS = sysconfig.get_path("scripts")
if (Path(_SCRIPTS) / "dbt").exists() and _SCRIPTS not in os.environ.get("PATH", "").split(":"):
    os.environ["PATH"] = _SCRIPTS + os.pathsep + os.environ.get("PATH", "")
# The job runs dbt through pipelines/dbt_child, which binds it to the run's process
# (resources.build_path_for says why).
os.environ["DBT_CHILD_EXECUTABLE"] = shutil.which("dbt") or "dbt"
os.environ["DBT_CHILD_BOUND"] = "1" if dbt_dies_with_parent() else ""
DBT_EXECUTABLE = str(Path(__file__).with_name("dbt_child"))

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")
dbt_project.prepare_if_dev()
if not dbt_project.manifest_path.exists():
    dbt_project.preparer.prepare(dbt_project)

FEATURES_SELECT = "tag:features"
POST_SEGMENTATION_SELECT = "tag:post_segmentation"
# Unit tests check SQL logic, not the night's data: `make test` runs them, the job does not.
# `buildable`: a test runs in the stage where all its parents exist (a test over features
# and segments waits for the second stage instead of failing in the first).
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test", "--indirect-selection", "buildable"]


class ProjectTranslator(DagsterDbtTranslator):
    """Asset keys are [schema, model]; groups follow the dbt folder layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        meta_key = (dbt_resource_props.get("meta") or {}).get("dagster", {}).get("asset_key")
        if meta_key:
            return AssetKey(meta_key)
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props.get("schema")


translator = ProjectTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def dbt_vars() -> list[str]:
    """`--vars` for dbt: BASE_CURRENCY (shared with ingest), then the DBT_VARS JSON object."""
    values: dict[str, Any] = {}
    if os.getenv("BASE_CURRENCY"):
        values["base_currency"] = os.environ["BASE_CURRENCY"].strip().upper()
    raw = os.getenv("DBT_VARS", "").strip()
    if raw:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("DBT_VARS must be a JSON object, e.g. '{\"gross_margin\": 0.6}'")
        values.update(parsed)
    return ["--vars", json.dumps(values, sort_keys=True)] if values else []
