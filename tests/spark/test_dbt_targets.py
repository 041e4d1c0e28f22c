"""dbt's two targets parse to the same nodes.

Dagster loads the manifest parsed for DuckDB and maps the events of a dbt run by node id, so
a node whose id depends on the target (a test on a `quote: true` column hashes `"T"` on
DuckDB and `` `T` `` on Spark) fails every stage on Spark (docs/decisions.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.dbt import invoke_dbt


def _node_ids(tmp: Path, target: str) -> set[str]:
    invoke_dbt(["parse", "--target", target], tmp / target)
    manifest = json.loads((tmp / target / "target" / "manifest.json").read_text())
    return {*manifest["nodes"], *manifest["sources"], *manifest["unit_tests"]}


def test_both_targets_have_the_same_node_ids(tmp_path):
    duckdb_ids = _node_ids(tmp_path, "dev")
    spark_ids = _node_ids(tmp_path, "spark")
    assert duckdb_ids == spark_ids
    assert len(duckdb_ids) > 200  # models, tests, sources and unit tests of the project
