"""The dbt project as Dagster sees it: the project, its two stages and the dbt resource.

Nothing here runs at import.  The project is prepared lazily (`dbt_project()`, cached):
`make parse` writes the manifest before `make run`, `make test` and `make dev`, and under
`dg dev` `prepare_if_dev()` parses it again when the definitions load, as dagster-dbt
documents (through the launcher: `LauncherPreparer`).

dbt runs through the `referral-segments-dbt` launcher (pipelines/dbt_child.py), which binds
it to the run's process and finds the venv's dbt without PATH.  What dbt needs to know of
the run (the store's path, its memory budget) it is told on its command line (`--vars`, read
by profiles.yml), never through the environment, which no module changes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import AssetCheckSpec, AssetSpec
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    DbtProjectPreparer,
)
from dagster_dbt.dbt_manifest import read_manifest_path
from dagster_shared.record import replace
from packaging import version
from pydantic import Field

from pipelines.catalog import MARTS_OWNERS, PIPELINE_OWNERS
from pipelines.dbt_child import PARENT_OPTION, SPARK_REMOTE_OPTION, WORKDIR_OPTION
from pipelines.dbt_metadata import published_table_name
from pipelines.resources import DBT_PROJECT_DIR, STORE_FILE

# The console script of pipelines/dbt_child.py, installed next to this interpreter.
DBT_LAUNCHER = str(Path(sysconfig.get_path("scripts")) / "referral-segments-dbt")

# The second stage reads the Python segmentation's output; the first is every other model,
# so a new model cannot be left out of both (tests/test_definitions.py).
POST_SEGMENTATION_TAG = "post_segmentation"
POST_SEGMENTATION_SELECT = f"tag:{POST_SEGMENTATION_TAG}"
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
        dbt = NightlyDbtResource.for_project(project)  # a night's settings: their defaults
        dbt.cli(dbt.parse_args(), target_path=project.target_path).wait()


@functools.cache
def dbt_project() -> DbtProject:
    """The dbt project, its manifest parsed again when `dg dev` loads the definitions."""
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")
    project = replace(project, preparer=LauncherPreparer())
    project.prepare_if_dev()
    return project


def dbt_manifest() -> Mapping[str, Any]:
    """The project's parsed manifest (dagster-dbt reads the file once per process)."""
    return read_manifest_path(dbt_project().manifest_path)


# The Dagster catalog's groups are the night's flow, in run order; an asset key's prefix is
# the schema its table lives in (docs/interfaces.md, "Dagster asset keys").  The Python
# assets take ingest, segments and publish (pipelines/assets.py); dbt models the others.
FLOW_GROUPS = ("ingest", "staging", "features", "segments", "referral_roi", "publish")


def flow_group(model: Mapping[str, Any]) -> str:
    """A dbt model's step of the flow, from its folder (as its stage is, dbt_project.yml):
    staging; what the first stage builds for the segmentation (features); the segment
    history marts (segments, with the segmentation that writes their source); the rest of
    the second stage (referral_roi)."""
    folders = list(model.get("fqn", [])[1:-1])
    if folders[:1] == ["staging"]:
        return "staging"
    if POST_SEGMENTATION_TAG not in model.get("tags", []):
        return "features"
    if folders[:2] == ["marts", "segments"]:
        return "segments"
    return "referral_roi"


def _relation(node: Mapping[str, Any] | None) -> str:
    if node is None:
        return "its table"
    return f"{node['schema']}.{node.get('alias') or node.get('identifier') or node['name']}"


def _values(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) else str(values)


def describe_test(test: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """What a dbt data test guards and what its failure means, for the asset check.

    A `description:` on the test in the YAML (the singular tests' in
    dbt_project/tests/singular/_singular_tests.yml) is taken as written; a generic test's is
    said from its arguments, so the 150 column tests need no hand-written text that could
    drift from what they check."""
    own = (test.get("description") or "").strip()
    if own:
        return own
    meta = test.get("test_metadata") or {}
    kind, kwargs = meta.get("name", ""), meta.get("kwargs", {})
    table = _relation(manifest["nodes"].get(test.get("attached_node") or ""))
    column = f"`{test.get('column_name') or kwargs.get('column_name')}`"
    if kind == "not_null":
        rule = f"{column} of {table} is never NULL."
    elif kind in ("unique", "staged_unique"):
        rule = f"No two rows of {table} share a {column}."
    elif kind == "accepted_values":
        rule = f"{column} of {table} is one of: {_values(kwargs.get('values'))} (NULL passes)."
    elif kind == "accepted_range":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
        rule = f"{column} of {table} is {bounds}, bounds included (NULL passes)."
    elif kind in ("relationships", "staged_relationships"):
        target = kwargs.get("to", "")
        name = target.split("'")[1] if "'" in target else target
        parent = next(
            (n for n in manifest["nodes"].values() if n.get("name") == name),
            None,
        )
        rule = (
            f"Every {column} of {table} is a `{kwargs.get('field')}` of "
            f"{_relation(parent) if parent else name} (NULL passes)."
        )
    elif kind == "unique_combination":
        rule = f"No two rows of {table} share the same ({_values(kwargs.get('columns'))})."
    else:
        rule = f"dbt test {kind} on {table} with {kwargs}."
    if kind.startswith("staged_"):
        rule += (
            " Checked for the rows the model's last build staged (every row after a "
            "rebuild); earlier rows passed it when they were staged."
        )
    severity = (test.get("config", {}).get("severity") or "error").lower()
    if severity == "error":
        return (
            f"{rule} A failing row fails the dbt stage and blocks everything downstream: "
            "nothing is published that night."
        )
    return f"{rule} A failing row only warns."


class ProjectTranslator(DagsterDbtTranslator):
    """dagster-dbt's asset keys ([schema, model]; [source, table]), with the catalog's
    groups (the flow), owners, real table locations and readable check descriptions."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") != "model":
            return None  # sources are the Python assets', which set their own group
        return flow_group(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        owners = MARTS_OWNERS if dbt_resource_props.get("schema") == "marts" else PIPELINE_OWNERS
        return list(owners)

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        """dagster-dbt's metadata, with `dagster/table_name` where readers find the table
        (dbt's relation name names the parse-time file, `parse.<schema>.<table>`)."""
        metadata = dict(super().get_metadata(dbt_resource_props))
        table = (
            dbt_resource_props.get("alias")
            or dbt_resource_props.get("identifier")
            or dbt_resource_props["name"]
        )
        metadata["dagster/table_name"] = published_table_name(dbt_resource_props["schema"], table)
        return metadata

    def get_asset_check_spec(
        self,
        asset_spec: AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        return replace(spec, description=describe_test(manifest["nodes"][unique_id], manifest))


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

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        """No dbt adapter in the Dagster process.  dagster-dbt builds one before every
        invocation only for `fetch_row_count()` / `fetch_column_metadata()`, which the stages
        do not use (pipelines/dbt_metadata.py measures the tables once dbt has exited):
        loading dbt's project and profile cost ~3-7 s a night at 1M, ~1 s per later stage.
        None is what dagster-dbt itself goes on with when building the adapter fails."""
        return None

    @property
    def _cli_version(self) -> version.Version:  # type: ignore[override]
        """The launcher runs this venv's dbt-core, so its version is the installed package's.
        dagster-dbt runs `dbt --version` for it once per run instead, which imports dbt and
        every adapter plugin: 3.7 s before the first dbt stage (measured on a loaded
        machine, 2026-12-01)."""
        return version.parse(importlib.metadata.version("dbt-core"))

    def dbt_vars(self, database: Path) -> dict[str, Any]:
        """BASE_CURRENCY, then DBT_VARS (which may override it), then where dbt writes."""
        values: dict[str, Any] = {"base_currency": self.base_currency.strip().upper()}
        raw = self.vars_json.strip()
        if raw:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("DBT_VARS must be a JSON object, e.g. '{\"gross_margin\": 0.6}'")
            values.update(parsed)
        # Read by profiles.yml, relative to the folder dbt runs in (the launcher's
        # --workdir, build_args): the same profile for every store keeps dbt's partial
        # parsing from `make parse` on.
        values["duckdb_path"] = database.name
        values["duckdb_memory_limit"] = self.memory_limit
        return values

    def parse_args(self) -> list[str]:
        """`dbt parse` with this resource's vars for a store: dagster-dbt copies the partial
        parse file this writes into each stage's new target folder, and dbt uses it only if
        the vars and profile are the same (a full parse costs ~7 s a stage)."""
        return ["parse", "--quiet", "--vars", self._vars_json(self.dbt_vars(Path(STORE_FILE)))]

    @staticmethod
    def _vars_json(values: Mapping[str, Any]) -> str:
        return json.dumps(values, sort_keys=True)

    def on_spark(self) -> NightlyDbtResource:
        """The same dbt on the profile's `spark` target (dagster-dbt adds `--target` from
        the resource, after the arguments it is given)."""
        return self.model_copy(update={"target": "spark"})

    def build_args(
        self,
        database: Path,
        full_refresh: bool = False,
        spark: SparkTarget | None = None,
    ) -> list[str]:
        """`dbt build` of a stage; the launcher takes --bind-to-parent (this process, which
        starts dbt) for itself and binds dbt to it.  With `spark` (run by `on_spark()`),
        the night's schema prefix, and the Connect URL that the launcher gives dbt as
        SPARK_REMOTE (pipelines/dbt_child.py)."""
        refresh = ["--full-refresh"] if full_refresh else []
        values = self.dbt_vars(database)
        target: list[str] = []
        if spark is not None:
            values["schema_prefix"] = spark.schema_prefix
            target = [SPARK_REMOTE_OPTION, spark.url]
        return [
            *BUILD_ARGS,
            *refresh,
            "--vars",
            self._vars_json(values),
            *target,
            WORKDIR_OPTION,
            str(database.parent),
            PARENT_OPTION,
            str(os.getpid()),
        ]


@dataclass(frozen=True)
class SparkTarget:
    """Where a dbt stage builds on Spark: the Connect URL and the night's schema prefix."""

    url: str
    schema_prefix: str


def main() -> None:
    """`make parse`: the manifest that Dagster reads, parsed as a night's stages parse."""
    LauncherPreparer().prepare(dbt_project())


if __name__ == "__main__":
    main()
