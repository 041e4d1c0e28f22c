"""The lake (pipelines/spark/lake.py): DuckDB tables landed as Parquet, read back by Spark
with the types dbt's models expect, and a later export seen as a new partition."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb

from pipelines.spark.lake import land_duckdb_tables, register_parquet_tables


def test_lake_types_read_back_in_spark(spark, tmp_path: Path):
    """DuckDB types as Spark reads them from the lake, and a partition landed later."""
    source = tmp_path / "types.duckdb"
    con = duckdb.connect(str(source))
    try:
        con.execute("create schema raw")
        con.execute(
            "create table raw.typed (id bigint, flag boolean, day date, seen_at timestamp, "
            "amount decimal(18,4), rate decimal(18,8), doc json, _row_hash ubigint, "
            "_export_date date, _superseded_on date, _line_hash ubigint)"
        )
        con.execute(
            "insert into raw.typed values (1, true, '2026-11-20', '2026-11-20 23:30:00', "
            "12.3456, 1.23456789, '{\"a\": 1}', 18446744073709551615, '2026-11-20', NULL, 7)"
        )
        con.execute("create table raw.nothing (id bigint, _export_date date)")
    finally:
        con.close()
    lake = tmp_path / "lake"
    tables = [("raw", "typed"), ("raw", "nothing")]
    land_duckdb_tables(source, lake, tables)
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
    first_partition = lake / "raw" / "typed" / "_export_date=2026-11-20" / "data_0.parquet"
    landed_first = first_partition.read_bytes()

    # the next export lands as a new partition folder; registering again makes it seen
    con = duckdb.connect(str(source))
    try:
        con.execute(
            "insert into raw.typed select 2, false, day, seen_at, amount, rate, doc, 0, "
            "date '2026-11-21', NULL, 8 from raw.typed"
        )
        # ingest's markers in the old rows are not landed: their files stay as they were
        con.execute(
            "update raw.typed set _superseded_on = date '2026-11-21', _line_hash = 9 where id = 1"
        )
    finally:
        con.close()
    land_duckdb_tables(source, lake, tables)
    register_parquet_tables(spark, lake, tables, schema_prefix="lake_")
    assert sorted(r[0] for r in spark.sql("select id from lake_raw.typed").collect()) == [1, 2]
    assert first_partition.read_bytes() == landed_first
