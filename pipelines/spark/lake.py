"""The tables dbt reads as sources, from the DuckDB store to Parquet files Spark reads.

The Python side of the pipeline (ingest, segmentation) writes DuckDB; dbt on Spark reads
the same tables as Parquet files in a folder (the "lake"), registered as Spark tables:

    tables = [("raw", "orders"), ("marts", "customer_segments")]
    land_duckdb_tables(store_path, lake_dir, tables)
    register_parquet_tables(spark, lake_dir, tables, schema_prefix="n20261121_")

Layout: `<lake_dir>/<schema>/<table>/`.  A raw table with `_export_date` (the versions of
a contract table) is partitioned by it in Hive-style folders
(`_export_date=2026-11-21/data_0.parquet`), so a night adds a folder and Spark prunes by
export date; any other table is one file, `data_0.parquet`.  Beside the data,
`_columns.json` (Spark skips files whose name starts with `_`) holds the table's Spark
columns, so an empty table (no Parquet file at all when partitioned) still registers with
its types.

Types, DuckDB -> Parquet -> Spark: DATE -> date; TIMESTAMP -> timestamp_ntz (DuckDB's
TIMESTAMP has no time zone; Spark's `timestamp` is an instant, shown in the session's
zone); TIMESTAMP WITH TIME ZONE -> timestamp; DECIMAL(p,s) -> decimal(p,s); BOOLEAN,
TINYINT, SMALLINT, INTEGER, BIGINT, FLOAT, DOUBLE and VARCHAR as themselves.  Cast before
they are written:
- JSON -> VARCHAR (string): Parquet's JSON annotation is unknown to some readers, and no
  model parses JSON;
- UBIGINT (`_row_hash`, ingest's change detection) -> DECIMAL(20,0): DuckDB writes UBIGINT
  as Parquet UINT_64, which Spark 4 happens to read but older Spark and other engines
  refuse; 20 digits hold every value, so it stays exact (no dbt model reads it);
- UINTEGER -> BIGINT, USMALLINT -> INTEGER, UTINYINT -> SMALLINT, HUGEINT -> DECIMAL(38,0):
  the next signed type that holds every value.
Any other type (lists, structs, blobs, ...) is refused, naming the column: the tables dbt
reads have none.

A raw table's `_superseded_on` (ingest's marker of the key's next version, set again in
old rows when a newer version arrives: pipelines/ingest/versions.py) and `_line_hash`
(given again when a later line re-delivers the version: pipelines/ingest/lines.py) are not
landed: no model reads them, and a partition's files then hold only what its export
stored.

Deterministic: rows are written sorted by every column, one file per partition, so the
same DuckDB tables give the same files (DuckDB's version is written in them).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import duckdb

from pipelines.sql import quote_ident, sql_literal

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PARTITION_COLUMN = "_export_date"
PARTITIONED_SCHEMAS = ("raw",)
# Columns of the partitioned schemas' tables that stay in the store (see above).
NOT_LANDED = ("_superseded_on", "_line_hash")
COLUMNS_FILE = "_columns.json"
DATA_FILE_PATTERN = "data_{i}"

# DuckDB types Spark reads from Parquet as they are: their Spark type.
_AS_IS: dict[str, str] = {
    "BOOLEAN": "boolean",
    "TINYINT": "tinyint",
    "SMALLINT": "smallint",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "FLOAT": "float",
    "DOUBLE": "double",
    "VARCHAR": "string",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}
# DuckDB types cast before they are written: (DuckDB type written, Spark type).
_CAST: dict[str, tuple[str, str]] = {
    "JSON": ("VARCHAR", "string"),
    "UTINYINT": ("SMALLINT", "smallint"),
    "USMALLINT": ("INTEGER", "int"),
    "UINTEGER": ("BIGINT", "bigint"),
    "UBIGINT": ("DECIMAL(20,0)", "decimal(20,0)"),
    "HUGEINT": ("DECIMAL(38,0)", "decimal(38,0)"),
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class LandedTable:
    """One table in the lake: its folder and its Spark columns."""

    schema: str
    table: str
    path: Path
    columns: tuple[tuple[str, str], ...]  # (name, Spark type); the partition column last
    partition_column: str | None


def table_path(lake_dir: Path, schema: str, table: str) -> Path:
    """The folder of `schema.table` in the lake."""
    return Path(lake_dir) / schema / table


def spark_type(duckdb_type: str, column: str = "") -> tuple[str | None, str]:
    """(DuckDB type to cast to before writing, or None; Spark type) of a DuckDB type."""
    if duckdb_type in _AS_IS:
        return None, _AS_IS[duckdb_type]
    if duckdb_type in _CAST:
        return _CAST[duckdb_type]
    match = _DECIMAL.fullmatch(duckdb_type)
    if match:
        return None, f"decimal({match[1]},{match[2]})"
    raise ValueError(f"{column}: DuckDB type {duckdb_type} has no Spark type in the lake")


def _connect_read_only(duckdb_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the database.  When this process has the file open
    already (dbt-duckdb keeps its in-process handle after a build), DuckDB refuses another
    configuration of it: then a connection of the open one, used only to read."""
    try:
        return duckdb.connect(str(duckdb_path), read_only=True)
    except duckdb.ConnectionException:
        return duckdb.connect(str(duckdb_path))


def _duckdb_columns(
    con: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    if not rows:
        raise ValueError(f"no table {schema}.{table} in the DuckDB database")
    return [(str(name), str(data_type)) for name, data_type in rows]


def land_table(
    con: duckdb.DuckDBPyConnection, lake_dir: Path, schema: str, table: str
) -> LandedTable:
    """Write one DuckDB table to its lake folder, replacing what was there: written next
    to it first and swapped in by renames, so a reader never sees half a table."""
    columns = _duckdb_columns(con, schema, table)
    if schema in PARTITIONED_SCHEMAS:
        columns = [(name, kind) for name, kind in columns if name not in NOT_LANDED]
    partition = None
    if schema in PARTITIONED_SCHEMAS and any(name == PARTITION_COLUMN for name, _ in columns):
        partition = PARTITION_COLUMN
    select, spark_columns = [], []
    for name, duckdb_type in columns:
        cast, kind = spark_type(duckdb_type, f"{schema}.{table}.{name}")
        ident = quote_ident(name)
        select.append(f"CAST({ident} AS {cast}) AS {ident}" if cast else ident)
        if name != partition:
            spark_columns.append((name, kind))
    if partition:
        spark_columns.append((partition, "date"))  # Spark declares partition columns last

    final = table_path(lake_dir, schema, table)
    final.parent.mkdir(parents=True, exist_ok=True)
    landing = final.with_name(final.name + ".landing")
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir()
    source = f"{quote_ident(schema)}.{quote_ident(table)}"
    query = f"SELECT {', '.join(select)} FROM {source} ORDER BY ALL"
    if partition:
        target = landing
        options = (
            f"FORMAT parquet, PARTITION_BY ({quote_ident(partition)}), "
            f"FILENAME_PATTERN {sql_literal(DATA_FILE_PATTERN)}"
        )
    else:
        target = landing / (DATA_FILE_PATTERN.format(i=0) + ".parquet")
        options = "FORMAT parquet"
    con.execute(f"COPY ({query}) TO {sql_literal(str(target))} ({options})")
    spec = {"columns": spark_columns, "partition_column": partition}
    (landing / COLUMNS_FILE).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")

    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    landing.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return LandedTable(schema, table, final, tuple(spark_columns), partition)


def land_duckdb_tables(
    duckdb_path: Path, lake_dir: Path, tables: Iterable[tuple[str, str]]
) -> list[LandedTable]:
    """Write each (schema, table) of the DuckDB database at `duckdb_path` to
    `<lake_dir>/<schema>/<table>/` as Parquet (see the module's docstring), replacing an
    earlier landing of it.  Returns what was landed, in the order given."""
    con = _connect_read_only(Path(duckdb_path))
    try:
        return [land_table(con, Path(lake_dir), schema, table) for schema, table in tables]
    finally:
        con.close()


def read_landed(lake_dir: Path, schema: str, table: str) -> LandedTable:
    """A landed table, as its `_columns.json` describes it."""
    path = table_path(lake_dir, schema, table)
    try:
        spec = json.loads((path / COLUMNS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{schema}.{table} was never landed in {lake_dir}") from None
    columns = tuple((str(name), str(kind)) for name, kind in spec["columns"])
    return LandedTable(schema, table, path, columns, spec["partition_column"])


def _name(database: str, table: str) -> str:
    return f"`{database}`.`{table}`"


def create_table_sql(landed: LandedTable, database: str) -> str:
    """CREATE TABLE of `landed` as an external Parquet table over its folder."""
    columns = ", ".join(f"`{column}` {kind}" for column, kind in landed.columns)
    ddl = f"CREATE TABLE {_name(database, landed.table)} ({columns}) USING parquet"
    if landed.partition_column:
        ddl += f" PARTITIONED BY (`{landed.partition_column}`)"
    return ddl + f" LOCATION {sql_literal(landed.path.resolve().as_uri())}"


def _declared(spark: SparkSession, name: str) -> tuple[list[tuple[str, str]], str | None]:
    """(columns, location path) of a declared table."""
    columns = [(field.name, field.dataType.simpleString()) for field in spark.table(name).schema]
    details = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    location = next((str(row[1]) for row in details if row[0] == "Location"), None)
    return columns, None if location is None else urlparse(location).path.rstrip("/")


def register_table(spark: SparkSession, landed: LandedTable, schema_prefix: str = "") -> str:
    """Declare `landed` as `<schema_prefix><schema>.<table>` (its database must exist) and
    make Spark see its files as landed last; returns the qualified name.

    A declaration with the landed columns and folder is kept, another one replaced
    (dropping an external table leaves its files alone)."""
    database = f"{schema_prefix}{landed.schema}"
    name = _name(database, landed.table)
    declared = spark.catalog.tableExists(f"{database}.{landed.table}")
    if declared and _declared(spark, name) != (list(landed.columns), str(landed.path.resolve())):
        spark.sql(f"DROP TABLE {name}").collect()
        declared = False
    if not declared:
        spark.sql(create_table_sql(landed, database)).collect()
    if landed.partition_column:
        # The catalog lists a partitioned table's partitions: export folders landed since
        # it was declared are unknown to it until repaired, and removed ones stay listed.
        spark.sql(f"MSCK REPAIR TABLE {name} SYNC PARTITIONS").collect()
    if declared:
        # Spark caches a table's file listing: files landed again are listed anew.
        spark.sql(f"REFRESH TABLE {name}").collect()
    return f"{database}.{landed.table}"


def register_parquet_tables(
    spark: SparkSession,
    lake_dir: Path,
    tables: Sequence[tuple[str, str]],
    schema_prefix: str = "",
) -> list[str]:
    """Declare each landed (schema, table) of `lake_dir` in Spark's catalog as the
    external table `<schema_prefix><schema>.<table>` (where dbt's var `schema_prefix`
    reads its sources) and make Spark see the files landed last.  Idempotent.  Returns
    the qualified names, in the order given."""
    for database in dict.fromkeys(f"{schema_prefix}{schema}" for schema, _ in tables):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`").collect()
    return [
        register_table(spark, read_landed(Path(lake_dir), schema, table), schema_prefix)
        for schema, table in tables
    ]
