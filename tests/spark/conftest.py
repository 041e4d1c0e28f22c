"""One local Spark Connect server for every Spark test of a pytest worker.

tests/conftest.py keeps the modules of tests/spark on one worker (one unit of work), so the
server (~15 s to start, ~3 GB) is started once, when the first Spark test needs it, and
stopped when the worker ends.  SPARK_TEST_REMOTE names a server already running instead
(e.g. while working on a test).  Skipped only without `java` (`make test` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

# The test server's settings for a few rows on a fresh JVM, where the fixed costs of each
# of dbt's ~400 queries dominate (a pipeline's own server keeps Spark's defaults,
# pipelines/spark/server.py).  Measured in CPU seconds of the server for one dbt build:
# ~330 with Spark's defaults, of which 136 in the JIT compiling the Java code Spark
# generates for each query; ~210 with generated code off (interpreted expressions: the
# same results, which the tests compare with DuckDB's), C1 only and one shuffle partition.
TEST_SERVER_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # C1 only: the JVM then reserves 48 MB for compiled code by default, which the whole
    # sample night on Spark filled once ("Out of space in CodeCache", which stops Spark's
    # context): reserved as with tiered compilation.
    "spark.driver.extraJavaOptions": (
        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m"
    ),
}


@pytest.fixture(scope="session")
def spark_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("SPARK_TEST_REMOTE"):
        yield os.environ["SPARK_TEST_REMOTE"]
        return
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java (make test installs it)")
    from pipelines.spark.server import local_spark_connect

    root = tmp_path_factory.mktemp("spark_server")
    with local_spark_connect(
        warehouse_dir=root / "warehouse",
        log_file=root / "server.log",
        metastore_dir=root / "metastore",
        conf=TEST_SERVER_CONF,
    ) as url:
        yield url


@pytest.fixture(scope="session")
def spark(spark_url: str):
    """A Spark Connect client session on the tests' server."""
    from pipelines.spark.server import connect

    return connect(spark_url)
