"""The whole nightly job with WAREHOUSE_ENGINE=spark gives the DuckDB run's marts.

The session's generated sample export (3,000 customers in `make sample`'s contract layout)
is run once on DuckDB (`sample_night`, tests/conftest.py) and once here on the local Spark
Connect server of tests/spark/conftest.py; every table analysts get (marts and audit, the
segments and their ids included) must hold the same rows.  Skipped only without Java
(`make test` installs it).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.dbt import invoke_dbt
from tests.pipeline_runner import failure_messages, run_job, store_of

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")

# Values are compared as decimals to this many places: the engines give the same rounded
# values (macro round_double) in types of their own (DECIMAL(38,s) or DOUBLE on Spark where
# DuckDB has DECIMAL(18,s)), so 0.0687 and Decimal('0.068700') must compare equal.
PLACES = 6


@pytest.fixture(scope="module")
def spark_night(sample_night: Path, spark_url: str, tmp_path_factory: pytest.TempPathFactory):
    from pipelines.spark.engine import SparkResource

    root = tmp_path_factory.mktemp("spark_night")
    shutil.copytree(sample_night / "exports", root / "exports")
    result = run_job(
        root / "exports",
        root / "warehouse.duckdb",
        spark=SparkResource(engine="spark", remote=spark_url),
    )
    assert result.success, failure_messages(result)
    return root, result


def _night_prefix(session) -> str:
    """The schema prefix of the one night Spark holds (publishing dropped the others)."""
    from pipelines.spark.engine import is_night_schema

    nights = [d.name for d in session.catalog.listDatabases() if is_night_schema(d.name)]
    prefixes = {name.split("_", 1)[0] + "_" for name in nights}
    assert len(prefixes) == 1, nights
    return prefixes.pop()


def _tables(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1"
        ).fetchall()
        return {name: _rows(con, name) for (name,) in names}
    finally:
        con.close()


def _value(v):
    if isinstance(v, Decimal | float):
        return round(Decimal(str(v)), PLACES).normalize() + 0
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    rows = con.execute(f"SELECT * FROM {table}").fetchall()
    return sorted((tuple(_value(v) for v in row) for row in rows), key=repr)


def test_every_published_table_equals_the_duckdb_run(sample_night, spark_night):
    root, _ = spark_night
    duck = _tables(sample_night / "warehouse.duckdb")
    spark = _tables(root / "warehouse.duckdb")
    assert sorted(spark) == sorted(duck)
    differing = [name for name in duck if spark[name] != duck[name]]
    assert not differing, {name: (duck[name][:3], spark[name][:3]) for name in differing}
    # the sample's segments and ROI rows are there, not only empty tables
    assert len(duck["marts.customer_segments"]) > 0
    assert len(duck["marts.referral_roi_by_segment"]) > 0


def test_dbt_built_the_night_on_spark(spark_night, spark_url):
    """The marts came out of Spark: the run's dbt stages say so, and Spark's `marts` views
    read the night's tables; the store holds Spark's models as views on its files."""
    root, result = spark_night
    from pipelines.spark.server import connect

    session = connect(spark_url)
    prefix = _night_prefix(session)[:-1]
    views = {t.name: t.tableType for t in session.catalog.listTables("marts")}
    assert views["referral_roi_by_segment"] == "VIEW"
    assert views["customer_segments"] == "VIEW"
    spark_roi = session.sql("SELECT count(*) FROM marts.referral_roi_by_segment").collect()
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        (published_roi,) = con.execute(
            "SELECT count(*) FROM marts.referral_roi_by_segment"
        ).fetchone()
    finally:
        con.close()
    assert spark_roi[0][0] == published_roi
    store = duckdb.connect(str(store_of(root / "warehouse.duckdb")), read_only=True)
    try:
        kinds = dict(
            store.execute(
                "SELECT table_schema || '.' || table_name, table_type "
                "FROM information_schema.tables WHERE table_schema IN ('staging', 'marts')"
            ).fetchall()
        )
    finally:
        store.close()
    assert kinds["staging.stg_orders"] == "VIEW"
    assert kinds["marts.customer_features"] == "BASE TABLE"
    landed = sorted(p.name for p in (store_of(root / "warehouse.duckdb").parent / "lake").iterdir())
    assert landed == [prefix + "_"]


def test_dbt_unit_tests_pass_on_spark(spark_night, spark_url, tmp_path, monkeypatch):
    """Every dbt unit test of the project, on the spark target, against the night's schemas
    (dbt reads the columns of a unit test's inputs from the tables Spark built); the data
    tests ran in the night itself."""
    from pipelines.spark.server import connect

    prefix = _night_prefix(connect(spark_url))
    monkeypatch.setenv("SPARK_REMOTE", spark_url)
    vars_ = json.dumps({"schema_prefix": prefix})
    invoke_dbt(
        ["test", "--select", "test_type:unit", "--target", "spark", "--vars", vars_], tmp_path
    )
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    ran = sorted(r["unique_id"] for r in results if r["status"] == "pass")
    assert ran == sorted(manifest["unit_tests"])
    assert len(ran) >= 20  # the project's 22 unit tests as of this writing


def _mart_results(warehouse: Path) -> dict[str, list[tuple]]:
    """Every mart expectation's result logged in the night's store, per suite: type,
    column, success, element count, unexpected count (raw.validation_results)."""
    store = duckdb.connect(str(store_of(warehouse)), read_only=True)
    try:
        rows = store.execute(
            "SELECT suite, expectation, column_name, success, element_count, unexpected_count "
            "FROM raw.validation_results WHERE suite LIKE 'marts_%' ORDER BY ALL"
        ).fetchall()
    finally:
        store.close()
    results: dict[str, list[tuple]] = {}
    for suite, *result in rows:
        results.setdefault(suite, []).append(tuple(result))
    return results


def test_mart_checks_validate_what_spark_selects(sample_night, spark_night, spark_url):
    """Each GX mart check of the Spark night took its frame from the night's Spark table
    (the segmentation's two marts included: landed for it) and gave the outcome of the
    DuckDB night's check on the same export."""
    from pipelines.quality import MART_TABLES
    from pipelines.spark.server import connect

    root, result = spark_night
    prefix = _night_prefix(connect(spark_url))
    checks = {
        e.asset_check_key.name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.name.startswith("gx_marts_")
    }
    assert sorted(checks) == sorted(f"gx_marts_{m}" for m in MART_TABLES)
    for mart in MART_TABLES:
        metadata = checks[f"gx_marts_{mart}"].metadata
        assert metadata["frame_engine"].value == "spark", mart
        assert metadata["frame_table"].value == f"{prefix}marts.{mart}", mart
    duck, spark = (
        _mart_results(sample_night / "warehouse.duckdb"),
        _mart_results(root / "warehouse.duckdb"),
    )
    assert sorted(spark) == sorted(f"marts_{m}" for m in MART_TABLES)
    assert spark == duck
    for mart in MART_TABLES:
        evaluation = checks[f"gx_marts_{mart}"]
        failed = [r for r in duck[f"marts_{mart}"] if not r[2]]
        assert evaluation.passed == (not failed), mart
        assert evaluation.metadata["failed"].value == len(failed), mart
        assert evaluation.metadata["unexpected_count"].value == sum(r[4] or 0 for r in failed)
    # the sample's marts are not empty: the counts compared are real ones
    assert {r[3] for r in duck["marts_customer_segments"]} != {0}
