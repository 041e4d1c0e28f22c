"""The dbt project as Dagster sees it: the project, its two stages and the dbt resource.

Nothing here runs at import.  The project is prepared lazily (`dbt_project()`, cached):
`make parse` writes the manifest before `make run`, `make test` and `make dev`, and under
`dg dev` `prepare_if_dev()` parses it again when the definitions load, as dagster-dbt
documents (through the launcher: `LauncherPreparer`).

dbt runs through the `referral-segments-dbt` launcher (pipelines/dbt_child.py), which binds
it to the run's process and finds the venv's dbt without PATH.  What dbt needs to know of
the run (the build file, its memory budget) it is told on its command line (`--vars`, read
by profiles.yml), never through the environment, which no module changes.
"""

from __future__ import annotations

import functools
import json
import os
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    DbtProjectPreparer,
)
from dagster_shared.record import replace
from pydantic import Field

from pipelines.dbt_child import PARENT_OPTION
from pipelines.resources import DBT_PROJECT_DIR

# The console script of pipelines/dbt_child.py, installed next to this interpreter.
DBT_LAUNCHER = str(Path(sysconfig.get_path("scripts")) / "referral-segments-dbt")

# The second stage reads the Python segmentation's output; the first is every other model,
# so a new model cannot be left out of both (tests/test_definitions.py).
POST_SEGMENTATION_SELECT = "tag:post_segmentation"
# Unit tests check SQL logic, not the night's data: `make test` runs them, the job does not.
# `buildable`: a test runs in the stage where all its parents exist (a test over features
# and segments waits for the second stage instead of failing in the first).
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test", "--indirect-selection", "buildable"]


class LauncherPreparer(DbtProjectPreparer):
    """`dbt parse` under `dg dev`, through the launcher.

    dagster-dbt's own preparer runs the `dbt` it finds on PATH, which holds the venv only
    when it is activated."""

    def prepare_if_dev(self, project: DbtProject) -> None:
        if self.using_dagster_dev():
            self.prepare(project)

    def prepare(self, project: DbtProject) -> None:
        DbtCliResource(project_dir=project, dbt_executable=DBT_LAUNCHER).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()


@functools.cache
def dbt_project() -> DbtProject:
    """The dbt project, its manifest parsed again when `dg dev` loads the definitions."""
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")
    project = replace(project, preparer=LauncherPreparer())
    project.prepare_if_dev()
    return project


class ProjectTranslator(DagsterDbtTranslator):
    """dagster-dbt's asset keys ([schema, model]; [source, table]); groups follow the schema."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props.get("schema")


translator = ProjectTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class NightlyDbtResource(DbtCliResource):
    """dbt as a nightly run calls it: the dbt vars an operator sets, and the run's database.

    Build with `for_project`, which runs dbt through the launcher."""

    base_currency: str = Field(default="USD", description="BASE_CURRENCY: dbt var base_currency")
    vars_json: str = Field(
        default="",
        description='DBT_VARS: a JSON object of dbt vars, e.g. {"gross_margin": 0.6}',
    )
    memory_limit: str = Field(
        default="1GB", description="DBT_DUCKDB_MEMORY_LIMIT: dbt's DuckDB buffer pool"
    )

    @classmethod
    def for_project(cls, project: DbtProject, **settings: Any) -> NightlyDbtResource:
        return cls(project_dir=project, dbt_executable=DBT_LAUNCHER, **settings)

    def dbt_vars(self, database: Path) -> dict[str, Any]:
        """BASE_CURRENCY, then DBT_VARS (which may override it), then where dbt writes."""
        values: dict[str, Any] = {"base_currency": self.base_currency.strip().upper()}
        raw = self.vars_json.strip()
        if raw:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("DBT_VARS must be a JSON object, e.g. '{\"gross_margin\": 0.6}'")
            values.update(parsed)
        # Read by profiles.yml.  The same path every night keeps dbt's profile, and so its
        # partial parsing, from one night to the next.
        values["duckdb_path"] = str(database)
        values["duckdb_memory_limit"] = self.memory_limit
        return values

    def build_args(self, database: Path, full_refresh: bool = False) -> list[str]:
        """`dbt build` of a stage; the launcher takes --bind-to-parent (this process, which
        starts dbt) for itself and binds dbt to it."""
        refresh = ["--full-refresh"] if full_refresh else []
        dbt_vars = json.dumps(self.dbt_vars(database), sort_keys=True)
        return [*BUILD_ARGS, *refresh, "--vars", dbt_vars, PARENT_OPTION, str(os.getpid())]
