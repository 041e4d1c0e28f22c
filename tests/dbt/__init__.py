"""Tests of the dbt project; `invoke_dbt` runs dbt in-process against dbt_project/."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


def dbt_args(args: list[str], tmp: Path) -> list[str]:
    """`args` against dbt_project/, with dbt's target and logs under `tmp`."""
    return [
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
    ]


def invoke_dbt(args: list[str], tmp: Path, callbacks: list[Callable] | None = None) -> None:
    """dbt `args` with target and logs under `tmp`; fails the test when dbt fails."""
    res = dbtRunner(callbacks=callbacks or []).invoke(dbt_args(args, tmp))
    assert res.success, f"dbt {args[0]} failed: {res.exception or res.result}"


def invoke_dbt_logged(args: list[str], tmp: Path, database: Path) -> list[str]:
    """`invoke_dbt` on the DuckDB file `database` (DBT_DUCKDB_PATH, without the caller's
    DBT_VARS); returns what the project's macros logged (`log(..., info=true)`), in order."""
    said: list[str] = []

    def listen(event) -> None:
        if event.info.name == "JinjaLogInfo":
            said.append(event.info.msg)

    mp = pytest.MonkeyPatch()
    mp.setenv("DBT_DUCKDB_PATH", str(database))
    mp.delenv("DBT_VARS", raising=False)
    try:
        invoke_dbt(args, tmp, callbacks=[listen])
    finally:
        mp.undo()
    return said


def money(value: str) -> Decimal:
    """A money value as the models store it (DECIMAL(18,4))."""
    return Decimal(value).quantize(Decimal("0.0001"))


def dbt_test_failures(select: list[str], tmp: Path, database: Path) -> dict[str, int]:
    """`dbt test --select ...` on the DuckDB file `database`: the failing rows of each data
    test, by `<model>.<test name>` (test names repeat across models)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DBT_DUCKDB_PATH", str(database))
    mp.delenv("DBT_VARS", raising=False)
    try:
        res = dbtRunner().invoke(
            dbt_args(["test", "--select", *select, "--exclude-resource-type", "unit_test"], tmp)
        )
    finally:
        mp.undo()
    assert res.result is not None, f"dbt test did not run: {res.exception}"
    return {
        f"{r.node.attached_node.split('.')[-1]}.{r.node.name}": r.failures
        for r in res.result
        if getattr(r.node, "attached_node", None)
    }
