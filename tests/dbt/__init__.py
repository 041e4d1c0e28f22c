"""Tests of the dbt project; `invoke_dbt` runs dbt in-process against dbt_project/."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


def invoke_dbt(args: list[str], tmp: Path, callbacks: list[Callable] | None = None) -> None:
    """dbt `args` with target and logs under `tmp`; fails the test when dbt fails."""
    res = dbtRunner(callbacks=callbacks or []).invoke(
        [
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
    )
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
