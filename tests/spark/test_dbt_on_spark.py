"""dbt_project/ on Spark (target `spark`, issue #12) gives DuckDB's rows.

One module-scoped build on each engine from the same hand-made sources (tests/spark/
conftest.py, `both_engines`); every model DuckDB built is compared with Spark's, row for
row, and a few of the values tests/dbt/test_dbt_build.py works out by hand are asserted
on Spark's tables.  Skipped only where `java` is missing.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.spark.lake import land_duckdb_tables, register_parquet_tables
from tests.spark.conftest import SPARK_PREFIX, BothEngines

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs java (17+) on PATH"),
    # dbt-spark asks every statement's session for the profile's settings, and a Spark
    # Connect session refuses the server's own (catalog, memory, warehouse folder), with a
    # warning each time
    pytest.mark.filterwarnings("ignore:Failed to set spark:UserWarning"),
]


def normalised(value: Any) -> tuple:
    """A value both engines give in comparable form: numbers exactly (a float as the
    decimal of its shortest form, so 0.068702 == Decimal('0.068702'), which the project's
    rounding makes equal on both engines), dates and timestamps as ISO strings."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float):
        return ("number", Decimal(repr(value)))
    if isinstance(value, int | Decimal):
        return ("number", Decimal(value))
    if isinstance(value, dt.date):  # datetime too
        return ("time", value.isoformat())
    return ("text", str(value))


def duckdb_table(path: Path, schema: str, table: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(path))  # dbt-duckdb keeps its own in-process handle open
    try:
        cur = con.execute(f'select * from "{schema}"."{table}"')
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def spark_table(spark: Any, schema: str, table: str) -> tuple[list[str], list[tuple]]:
    df = spark.table(f"`{SPARK_PREFIX}{schema}`.`{table}`")
    return df.columns, [tuple(row) for row in df.collect()]


def spark_rows(spark: Any, sql: str) -> list[dict[str, Any]]:
    return [row.asDict() for row in spark.sql(sql).collect()]


def test_spark_ran_every_unit_and_data_test_duckdb_ran(both_engines: BothEngines):
    duck, spark = both_engines.duckdb, both_engines.spark_build
    for kind, passed in (("unit_test", "pass"), ("test", "pass"), ("model", "success")):
        assert spark.ran(kind) == duck.ran(kind), kind
        assert {status for _, status in spark.ran(kind)} == {passed}, kind
    assert sum(spark.ran("unit_test").values()) >= 20
    assert sum(spark.ran("test").values()) >= 150


def test_every_model_has_the_same_rows_on_both_engines(both_engines: BothEngines):
    started = time.monotonic()
    relations = both_engines.duckdb.relations()
    assert len(relations) >= 20
    differences = []
    for schema, table in sorted(relations.values()):
        duck_columns, duck_rows = duckdb_table(both_engines.duckdb_path, schema, table)
        spark_columns, spark_rows_ = spark_table(both_engines.spark, schema, table)
        # Spark's column names are case-insensitive: `T` is compared as `t`
        if [c.lower() for c in spark_columns] != [c.lower() for c in duck_columns]:
            differences.append((f"{schema}.{table}", "columns", duck_columns, spark_columns))
            continue
        expected = sorted(tuple(normalised(v) for v in row) for row in duck_rows)
        got = sorted(tuple(normalised(v) for v in row) for row in spark_rows_)
        if got != expected:
            only_duckdb = [r for r in expected if r not in got][:3]
            only_spark = [r for r in got if r not in expected][:3]
            differences.append((f"{schema}.{table}", only_duckdb, only_spark))
    both_engines.timings["comparisons"] = time.monotonic() - started
    assert differences == []


def test_hand_computed_values_on_spark(both_engines: BothEngines):
    """Values tests/dbt/test_dbt_build.py works out by hand from the same sample."""
    spark, p = both_engines.spark, SPARK_PREFIX
    features = {
        r["customer_id"]: r for r in spark_rows(spark, f"select * from {p}marts.customer_features")
    }
    assert sorted(features) == ["C1", "C2", "C3", "C5", "C6"]  # C4 erased
    c1 = features["C1"]
    assert (c1["frequency"], c1["recency"], c1["T"]) == (2, 973, 1024)
    assert c1["monetary_value"] == Decimal("44.0000")
    assert (c1["net_revenue"], c1["avg_order_value"]) == (Decimal("238.0000"), Decimal("59.5000"))
    assert (c1["refund_rate"], c1["discount_share"]) == (0.2, 0.040323)
    assert (c1["median_gap_days"], c1["purchase_days_per_year"]) == (486.5, 1.069336)
    assert (c1["nps_latest"], c1["nps_avg"], c1["csat_avg"]) == (6, 8.0, 5.0)
    assert (c1["rfm_segment"], c1["country"], c1["tenure_days"]) == ("Loyal", "US", 1046)
    assert (features["C5"]["median_gap_days"], features["C5"]["churn_risk"]) == (11.0, "high")
    assert features["C2"]["marketing_opt_in"] is False

    roi = {
        r["segment_id"]: r
        for r in spark_rows(spark, f"select * from {p}marts.referral_roi_by_segment")
    }
    a, b, total = roi["seg_a"], roi["seg_b"], roi["all"]
    assert (a["referred_revenue"], a["program_cost"]) == (Decimal("210.0000"), Decimal("75.0000"))
    assert (a["total_cost"], a["roi"], a["referral_cac"]) == (
        Decimal("105.0000"),
        1.0,
        Decimal("105.0000"),
    )
    assert (b["reward_cost"], b["total_cost"], b["roi"]) == (
        Decimal("16.5000"),
        Decimal("91.5000"),
        -1.0,
    )
    assert (total["total_cost"], total["roi"]) == (Decimal("196.5000"), 0.068702)
    assert total["referral_cac"] == Decimal("98.2500")
    assert {r["paid_cac"] for r in roi.values()} == {Decimal("100.0000")}
    assert roi["prospects"]["roi"] is None and roi["prospects"]["share_rate"] == 0.0

    top = spark_rows(spark, f"select * from {p}marts.top_referrers order by referrer_rank")
    assert [(r["customer_id"], r["reward_tier"]) for r in top] == [
        ("C1", "bronze"),
        ("C5", "bronze"),
    ]
    moves = spark_rows(
        spark,
        f"select from_segment_id, to_segment_id, customers from {p}marts.segment_migrations "
        "order by 1, 2",
    )
    assert [tuple(m.values()) for m in moves] == [
        ("(none)", "prospects", 1),
        ("(none)", "seg_b", 1),
        ("seg_a", "seg_a", 1),
        ("seg_b", "seg_a", 1),
        ("seg_b", "seg_b", 1),
    ]


def test_everything_is_built_under_the_schema_prefix(both_engines: BothEngines):
    databases = {r[0] for r in both_engines.spark.sql("show databases").collect()}
    for schema in ("raw", "marts", "history", "staging", "intermediate"):
        assert SPARK_PREFIX + schema in databases
    assert not databases & {"raw", "marts", "history", "staging", "intermediate"}
    # the PII test listed the columns of the prefixed schemas (Spark has no
    # information_schema), under their names without the prefix
    compiled = next(
        both_engines.spark_build.target_dir.glob("compiled/**/no_pii_in_dbt_schemas.sql")
    )
    assert "('marts', 'customer_features', 'customer_id')" in compiled.read_text()


def test_lake_types_read_back_in_spark(both_engines: BothEngines, tmp_path: Path):
    """DuckDB types as Spark reads them from the lake, and a partition landed later."""
    source = tmp_path / "types.duckdb"
    con = duckdb.connect(str(source))
    try:
        con.execute("create schema raw")
        con.execute(
            "create table raw.typed (id bigint, flag boolean, day date, seen_at timestamp, "
            "amount decimal(18,4), rate decimal(18,8), doc json, _row_hash ubigint, "
            "_export_date date)"
        )
        con.execute(
            "insert into raw.typed values (1, true, '2026-11-20', '2026-11-20 23:30:00', "
            "12.3456, 1.23456789, '{\"a\": 1}', 18446744073709551615, '2026-11-20')"
        )
        con.execute("create table raw.nothing (id bigint, _export_date date)")
    finally:
        con.close()
    lake = tmp_path / "lake"
    tables = [("raw", "typed"), ("raw", "nothing")]
    land_duckdb_tables(source, lake, tables)
    spark = both_engines.spark
    register_parquet_tables(spark, lake, tables, schema_prefix="lake_")
    typed = spark.table("lake_raw.typed")
    assert [(f.name, f.dataType.simpleString()) for f in typed.schema] == [
        ("id", "bigint"),
        ("flag", "boolean"),
        ("day", "date"),
        ("seen_at", "timestamp_ntz"),
        ("amount", "decimal(18,4)"),
        ("rate", "decimal(18,8)"),
        ("doc", "string"),
        ("_row_hash", "decimal(20,0)"),
        ("_export_date", "date"),
    ]
    assert [tuple(r) for r in typed.collect()] == [
        (
            1,
            True,
            dt.date(2026, 11, 20),
            dt.datetime(2026, 11, 20, 23, 30),
            Decimal("12.3456"),
            Decimal("1.23456789"),
            '{"a": 1}',
            Decimal(2**64 - 1),
            dt.date(2026, 11, 20),
        )
    ]
    assert spark.table("lake_raw.nothing").count() == 0
    assert (lake / "raw" / "typed" / "_export_date=2026-11-20" / "data_0.parquet").exists()

    # the next export lands as a new partition folder; registering again makes it seen
    con = duckdb.connect(str(source))
    try:
        con.execute(
            "insert into raw.typed select 2, false, day, seen_at, amount, rate, doc, 0, "
            "date '2026-11-21' from raw.typed"
        )
    finally:
        con.close()
    land_duckdb_tables(source, lake, tables)
    register_parquet_tables(spark, lake, tables, schema_prefix="lake_")
    assert sorted(r[0] for r in spark.sql("select id from lake_raw.typed").collect()) == [1, 2]
