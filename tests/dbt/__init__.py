"""Tests of the dbt project; `invoke_dbt` runs dbt in-process against dbt_project/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
