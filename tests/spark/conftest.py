"""The same dbt project built on DuckDB and on Spark from the same sources.

`both_engines` (module-scoped): the hand-made warehouse of tests/dbt/sample_warehouse.py,
`dbt build` on DuckDB as tests/dbt runs it, its source tables landed as Parquet
(pipelines/spark/lake.py) and registered in a local Spark Connect server
(pipelines/spark/server.py) under the schema prefix SPARK_PREFIX, then `dbt build --target
spark` with that prefix.  Everything is written under pytest's tmp folders; the server
is stopped when the module's tests end, passed or not.

Needs `java` on PATH; the tests that use it are skipped without (and only without) it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.spark.lake import land_duckdb_tables, register_parquet_tables
from pipelines.spark.server import connect, local_spark_connect
from tests.dbt import PROJECT_DIR, invoke_dbt
from tests.dbt.sample_warehouse import build_sample_warehouse

# A night's prefix, as a nightly run on Spark would build beside the published schemas.
SPARK_PREFIX = "n20261121_"
# dbt threads on Spark: with 2, dbt's own work (compiling, reading results) overlaps the
# server's; measured on the 2-core machine under other load, 136-232 s with 2 against
# 222-321 s with 1 for the build.
SPARK_THREADS = "2"
# The test server's settings for a few rows on a fresh JVM, where the fixed costs of each
# of dbt's ~400 queries dominate (the pipeline's server keeps Spark's defaults,
# pipelines/spark/server.py).  Measured in CPU seconds of the server for one build: ~330
# with Spark's defaults, of which 136 in the JIT compiling the Java code Spark generates
# for each query; ~210 with generated code off (interpreted expressions: the same results,
# which test_every_model_has_the_same_rows_on_both_engines checks), C1 only and one
# shuffle partition.
TEST_SERVER_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def source_tables() -> list[tuple[str, str]]:
    """Every (schema, table) of models/staging/_sources.yml: each source is named after
    its schema (the file says why)."""
    spec = yaml.safe_load((PROJECT_DIR / "models" / "staging" / "_sources.yml").read_text())
    return [
        (source["name"], table["name"]) for source in spec["sources"] for table in source["tables"]
    ]


@dataclass
class Build:
    """One engine's `dbt build`: its target folder and what it ran."""

    target_dir: Path

    def results(self) -> list[dict[str, Any]]:
        return json.loads((self.target_dir / "run_results.json").read_text())["results"]

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.target_dir / "manifest.json").read_text())

    def statuses(self, resource_type: str) -> dict[str, str]:
        """unique_id -> status of the nodes of a type (model, test, unit_test) it ran."""
        prefix = resource_type + "."
        return {
            r["unique_id"]: r["status"] for r in self.results() if r["unique_id"].startswith(prefix)
        }

    def ran(self, resource_type: str) -> Counter[tuple[str, str]]:
        """(name, status) of the nodes of a type it ran.  Names, not unique ids: a data
        test's id ends with a hash of its arguments, which hold the target's quoting
        (`"T"` on DuckDB, `` `T` `` on Spark)."""
        manifest = self.manifest()
        nodes = {**manifest["nodes"], **manifest.get("unit_tests", {})}
        return Counter(
            (nodes[uid]["name"], status) for uid, status in self.statuses(resource_type).items()
        )

    def relations(self) -> dict[str, tuple[str, str]]:
        """unique_id -> (schema, alias) of every model it built."""
        nodes = self.manifest()["nodes"]
        return {
            uid: (nodes[uid]["schema"], nodes[uid]["alias"])
            for uid, status in self.statuses("model").items()
            if status == "success"
        }


@dataclass
class BothEngines:
    duckdb_path: Path
    duckdb: Build
    spark_build: Build
    spark: Any  # pyspark.sql.SparkSession (Spark Connect client)
    lake_dir: Path
    timings: dict[str, float] = field(default_factory=dict)


def _dbt(args: list[str], folder: Path) -> Build:
    invoke_dbt(args, folder)  # fails the test when dbt fails
    return Build(folder / "target")


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BothEngines]:
    tmp = tmp_path_factory.mktemp("spark_night")
    timings: dict[str, float] = {}
    started = time.monotonic()
    mp = pytest.MonkeyPatch()
    mp.delenv("EMAIL_HASH_SALT", raising=False)  # both engines hash with the default salt
    mp.delenv("DBT_VARS", raising=False)
    try:
        warehouse = tmp / "warehouse.duckdb"
        build_sample_warehouse(warehouse)
        mp.setenv("DBT_DUCKDB_PATH", str(warehouse))
        duckdb_build = _dbt(["build"], tmp / "duckdb")
        timings["duckdb dbt build"] = time.monotonic() - started

        mark = time.monotonic()
        lake = tmp / "lake"
        land_duckdb_tables(warehouse, lake, source_tables())
        timings["land sources"] = time.monotonic() - mark

        mark = time.monotonic()
        spark_dir = tmp / "spark"
        with local_spark_connect(
            spark_dir / "warehouse", spark_dir / "server.log", conf=TEST_SERVER_CONF
        ) as url:
            timings["server start"] = time.monotonic() - mark
            mark = time.monotonic()
            spark = connect(url)
            register_parquet_tables(spark, lake, source_tables(), schema_prefix=SPARK_PREFIX)
            timings["register sources"] = time.monotonic() - mark

            mark = time.monotonic()
            mp.setenv("SPARK_REMOTE", url)
            mp.setenv("DBT_SPARK_THREADS", SPARK_THREADS)
            vars_ = json.dumps({"schema_prefix": SPARK_PREFIX})
            spark_build = _dbt(["build", "--target", "spark", "--vars", vars_], tmp / "spark-dbt")
            timings["spark dbt build"] = time.monotonic() - mark
            try:
                yield BothEngines(warehouse, duckdb_build, spark_build, spark, lake, timings)
            finally:
                spark.stop()
                mark = time.monotonic()
        timings["server stop"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        print("\nSpark test timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    finally:
        mp.undo()
