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
    ) as url:
        yield url
