"""Shared test set-up: quiet telemetry, throw-away Dagster home and report folder, and the
expensive work the suite does once instead of in every test that needs it.

In-process runs get their settings as explicit resources (tests/pipeline_runner.py); the
environment set here reaches the processes tests start (`python -m pipelines.nightly`,
dbt), which read it like `make run` does.

The suite runs on two pytest-xdist workers (pyproject.toml, `-n 2 --dist loadgroup`): a
module whose tests share a module-scoped fixture (one whole nightly run, say) stays on one
worker, so that run happens once; see `xdist_scope`.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="dagster_home_")
os.environ.setdefault("REPORTS_DIR", tempfile.mkdtemp(prefix="reports_"))
# Ingest (given explicit resources) and dbt (which reads the variable) hash emails with the
# same salt only if neither sees a developer's own.
os.environ.pop("EMAIL_HASH_SALT", None)

HAND_EXPORT = Path(__file__).parent / "fixtures" / "hand_export"

# How the two xdist workers share the suite (pyproject.toml: `-n 2 --dist loadgroup`):
# `xdist_scope` names the unit of work each test belongs to, `SCOPE_COST` orders them.
#
# A module's tests are one unit, so a module-scoped fixture (one whole nightly run, say)
# runs on one worker only; but the tests of SPREAD_MODULES share no module-scoped fixture
# (each runs its own nights on a copy of `hand_night`), so each is a unit of its own.
SPREAD_MODULES = ("tests/test_safety.py", "tests/test_refused_exports.py")
# The Spark tests share one local Spark server per worker (tests/spark/conftest.py): one
# unit, so one server starts.
SPARK_GROUP = "tests/spark/"
# Roughly how many whole nightly runs a unit costs (first match by prefix; others 0): the
# dearest units are handed out first, so both workers finish at about the same time.
SCOPE_COST = {
    SPARK_GROUP: 12.0,  # a whole night and the dbt unit tests on Spark, Spark's segmentation
    "tests/test_stores.py": 7.0,  # a night, then kill -9 during publish twice, each rerun
    "tests/test_pipeline_sample.py": 6.0,  # four runs on 3000 customers
    "tests/test_safety.py::test_two_runs_at_once": 4.0,  # two launches, one after the other
    "tests/test_refused_exports.py::test_refused_full_export": 3.5,
    "tests/test_safety.py::test_killed_run": 3.0,  # a killed night, then a whole one
    "tests/test_sample_layouts.py": 2.5,
    "tests/test_sources_hubspot.py": 2.0,
    "tests/test_refused_exports.py": 1.5,
    "tests/test_safety.py::test_refused_export": 0.1,  # refused at ingest: no dbt
    "tests/test_safety.py": 1.0,
    "tests/test_sources_": 1.0,
    "tests/dbt/test_incremental_history.py": 1.5,  # 8 nights and their full refreshes
    "tests/dbt/": 1.0,
    "tests/test_hand_fixture.py": 1.0,  # the first to ask runs `hand_night`
    "tests/test_report.py": 1.0,
    "tests/test_definitions.py": 1.0,
    "tests/test_dagster_operations.py": 3.0,  # good, refused and recovered nights
    "tests/test_dagster_catalog.py": 1.0,  # a second night on a copy of `hand_night`
    "tests/test_readme_queries.py": 0.2,  # queries on a copy of `hand_night`
}


def xdist_scope(nodeid: str) -> str:
    """The unit of work of a test (see SPREAD_MODULES and SPARK_GROUP)."""
    if nodeid.startswith(SPARK_GROUP):
        return SPARK_GROUP
    if nodeid.startswith(SPREAD_MODULES):
        return nodeid
    return nodeid.split("::", 1)[0]


def scope_cost(scope: str) -> float:
    """A unit's rough cost (SCOPE_COST), only to order the units."""
    return next((cost for key, cost in SCOPE_COST.items() if scope.startswith(key)), 0.0)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadgroup` with this suite's units (`xdist_scope`), dearest first.

    pytest-xdist 3.8 cannot group by `xdist_group` marks under pytest 9 (it renames the
    node ids through an attribute pytest no longer reads), so the units are decided here
    from the node ids."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SuiteScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # an xdist_group mark, if ever seen
                return super()._split_scope(nodeid)
            return xdist_scope(nodeid)

        def _assign_work_unit(self, node: object) -> None:
            dearest = max(self.workqueue, key=scope_cost)  # first of equals: collection order
            self.workqueue.move_to_end(dearest, last=False)
            super()._assign_work_unit(node)

    return SuiteScheduling(config, log)


def _session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every worker of this session sees (each xdist worker has its own basetemp
    below it); without xdist, the basetemp itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _shared_night(
    tmp_path_factory: pytest.TempPathFactory, name: str, write_exports: Callable[[Path], None]
) -> Path:
    """A first night run once for the whole session, by whichever worker asks first: a
    folder `name` with `exports/` (written by `write_exports`), `warehouse.duckdb` and the
    run's store.

    Read only: a test that runs another night or writes copies it first (`copy_night` in
    tests/pipeline_runner.py), as do the modules that only read it, so no test holds a lock
    on the shared files.
    """
    from filelock import FileLock

    from tests.pipeline_runner import failure_messages, run_job

    shared = _session_folder(tmp_path_factory)
    root = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (root / ".done").exists():
            shutil.rmtree(root, ignore_errors=True)
            write_exports(root / "exports")
            result = run_job(root / "exports", root / "warehouse.duckdb")
            assert result.success, failure_messages(result)
            (root / ".done").touch()
    return root


@pytest.fixture(scope="session")
def hand_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand fixture's first night (see `_shared_night`)."""
    return _shared_night(
        tmp_path_factory, "hand_night", lambda exports: shutil.copytree(HAND_EXPORT, exports)
    )


@pytest.fixture(scope="session")
def sample_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated sample export's first night (see `_shared_night`): the DuckDB night
    that tests/test_pipeline_sample.py goes on from and tests/spark compares Spark with."""
    from pipelines.sample import generate_export
    from tests.pipeline_runner import SAMPLE_AS_OF, SAMPLE_CUSTOMERS, SAMPLE_SEED

    return _shared_night(
        tmp_path_factory,
        "sample_night",
        lambda exports: generate_export(
            exports, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, as_of=SAMPLE_AS_OF
        ),
    )


@pytest.fixture(scope="session", autouse=True)
def dbt_version_asked_once() -> Iterator[None]:
    """Before each dbt command dagster-dbt asks the dbt executable its version (`dbt
    --version` through the launcher: a new Python process importing dbt, ~3 s), twice in
    every nightly run; the answer cannot change within a session, so each executable is
    asked once."""
    from dagster_dbt import DbtCliResource

    asked = DbtCliResource.__dict__.get("_cli_version")
    if not isinstance(asked, functools.cached_property):  # dagster-dbt changed: ask each time
        yield
        return
    versions: dict[str, object] = {}

    def cli_version(self: DbtCliResource) -> object:
        if self.dbt_executable not in versions:
            versions[self.dbt_executable] = asked.func(self)
        return versions[self.dbt_executable]

    patch = pytest.MonkeyPatch()
    patch.setattr(DbtCliResource, "_cli_version", property(cli_version))
    try:
        yield
    finally:
        patch.undo()
