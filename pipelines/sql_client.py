"""`make sql`: the analysts' warehouse, read-only, in the DuckDB CLI.

The CLI is the `duckdb-cli` wheel (`pyproject.toml` extra `sql`, installed by `make
install`): the official DuckDB shell binary, so dot commands, `.mode`, completion and
Ctrl-C (cancel the running query) behave as in DuckDB's own docs. It is run directly
(`exec`), not through the wheel's Python wrapper, so Ctrl-C reaches the shell alone.

    python -m pipelines.sql_client [CLI ARGS...]   # e.g. -csv -c "SELECT 1"

opens `WAREHOUSE_PATH` (default `data/warehouse.duckdb`; relative paths are taken from the
project root) with `-readonly`, the other arguments after the file. Light on purpose: no
Dagster import, so the shell starts at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"


def warehouse_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The published warehouse: WAREHOUSE_PATH, relative paths from the project root (as
    `pipelines.resources.absolute` takes them)."""
    p = Path(environ.get("WAREHOUSE_PATH") or DEFAULT_WAREHOUSE).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def cli_binary() -> Path:
    """The DuckDB shell shipped in the `duckdb-cli` wheel."""
    try:
        import duckdb_cli
    except ImportError as exc:
        raise SystemExit(
            "The DuckDB CLI (package duckdb-cli) is not installed: run `make install`."
        ) from exc
    binary = Path(duckdb_cli.__file__).resolve().parent / "duckdb"
    if not binary.is_file():
        raise SystemExit(f"The duckdb-cli package has no shell binary at {binary}.")
    return binary


def command(warehouse: Path, *args: str) -> list[str]:
    """The command line `make sql` runs: the CLI, read-only, on `warehouse`, then `args`."""
    return [str(cli_binary()), "-readonly", str(warehouse), *args]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    warehouse = warehouse_path()
    if not warehouse.is_file():
        print(
            f"No warehouse at {warehouse}: run `make run` first "
            "(it publishes the analysts' warehouse there).",
            file=sys.stderr,
        )
        raise SystemExit(1)
    cmd = command(warehouse, *args)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
