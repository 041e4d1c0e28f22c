"""The mart checks' frames on the Spark engine: selected by Spark, validated by GX as on DuckDB.

With `WAREHOUSE_ENGINE=spark` the night's marts are Spark's tables `<prefix>marts.<mart>`;
a mart check selects its frame there (the suite's columns, in key order, compacted above
`GX_COMPACT_MIN_ROWS` by the same SQL as on DuckDB, pipelines/quality/compact.py), so what
GX validates is what Spark built, not the copy mirrored into the store.  The rows reach
pandas through DuckDB's own conversion (Arrow in between), so GX sees a DuckDB frame's
dtypes (DECIMAL as float64, nullable integers as Int64, ...) and gives the same outcome.
The raw checks stay on DuckDB: raw lives only in the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from pipelines.quality.compact import Frame, select_frame
from pipelines.quality.dialect import SPARK
from pipelines.quality.frames import check_mart, suite_frame_sql
from pipelines.sql import quote_ident

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkFrames:
    """A frame's queries in Spark SQL on a Spark Connect session (`FrameEngine`)."""

    dialect = SPARK

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def count(self, source: str) -> int:
        return self.spark.sql(f"SELECT count(*) {source}").collect()[0][0]

    def types(self, select: str) -> dict[str, str]:
        """Spark's type names (`int`, `bigint`, `decimal(18,4)`, ...) from the query's
        schema (Spark has no `DESCRIBE SELECT`)."""
        schema = self.spark.sql(select).schema
        return {f.name: f.dataType.simpleString() for f in schema.fields}

    def materialize(self, name: str, select: str) -> None:
        """A cached temp view of the session: computed once (as DuckDB's temp table is),
        however often the selection's predicates read it; one left by a killed check is
        replaced."""
        self.drop(name)
        self.spark.sql(f"CACHE TABLE {name} AS {select}").collect()

    def drop(self, name: str) -> None:
        self.spark.sql(f"UNCACHE TABLE IF EXISTS {name}").collect()
        self.spark.sql(f"DROP VIEW IF EXISTS {name}").collect()

    def frame(self, sql: str) -> pd.DataFrame:
        return spark_to_pandas(self.spark.sql(sql))


def spark_to_pandas(frame: Any) -> pd.DataFrame:
    """A Spark DataFrame's rows as DuckDB's `.df()` gives them: through Arrow into DuckDB
    and out with its conversion, so the dtypes equal a DuckDB frame's (Spark's own
    `toPandas` gives Decimal objects and float64 for nullable integers); instants as UTC
    wall-clock TIMESTAMPs, as `mirror_models` stores them."""
    table = frame.toArrow()
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.from_arrow(table)
        items = [
            f"{quote_ident(n)}::TIMESTAMP AS {quote_ident(n)}"
            if t == "TIMESTAMP WITH TIME ZONE"
            else quote_ident(n)
            for n, t in zip(relation.columns, map(str, relation.types), strict=True)
        ]
        return relation.project(", ".join(items)).df() if items else relation.df()


def spark_table(prefix: str, mart: str) -> str:
    """The night's Spark table of a mart (dbt's model, or the segmentation's table landed
    for the second dbt stage): `<prefix>marts.<mart>`."""
    return f"{prefix}marts.{mart}"


def spark_check_frame(
    spark: SparkSession, suite_name: str, table: str, min_rows: int | None = None
) -> Frame:
    """`suite_name`'s frame of the Spark table `table` (`database.name`), selected in Spark
    (compacted when large); `origin` names the engine and the table."""
    database, name = table.split(".", 1)
    existing = {c.lower(): c for c in spark.table(f"{database}.{name}").columns}
    relation = f"{SPARK.quote(database)}.{SPARK.quote(name)}"
    items, source, order = suite_frame_sql(suite_name, relation, existing, SPARK.quote)
    frame = select_frame(SparkFrames(spark), suite_name, items, source, order, min_rows)
    frame.origin = {"frame_engine": "spark", "frame_table": table}
    return frame


def spark_mart_check_frame(
    spark: SparkSession, mart: str, prefix: str, min_rows: int | None = None
) -> Frame:
    """`mart_check_frame` on the Spark engine: marts.<mart> as the night built it in Spark."""
    return spark_check_frame(spark, check_mart(mart), spark_table(prefix, mart), min_rows)


def python_marts(manifest: Any) -> set[str]:
    """The marts the Python segmentation writes into the store (dbt reads them as sources
    of schema `marts`): Spark has them only once they are landed."""
    return {
        s["name"] for s in manifest.get("sources", {}).values() if s.get("source_name") == "marts"
    }


def land_python_mart(
    spark: SparkSession, con: duckdb.DuckDBPyConnection, lake: Path, prefix: str, mart: str
) -> None:
    """Land a mart the segmentation wrote into the store as `<prefix>marts.<mart>` (the
    table the second dbt stage would land and read): its check runs before that stage, and
    a re-executed night's earlier landing may predate this segmentation."""
    from pipelines.spark.engine import land_sources

    land_sources(spark, con, lake, prefix, [("marts", mart)])
