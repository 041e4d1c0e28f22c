"""WAREHOUSE_ENGINE=spark: dbt builds the night on Spark, the other steps keep to the store.

What runs where (docs/spark.md):
- ingest, its raw checks, the identity crosswalk and erasure stay Python and DuckDB on the
  pipeline's store: the export files are read on one machine either way, and the store's
  guarantees (versions, quarantine, kill -9, erasure) are the same on both engines;
- before each dbt stage, the dbt sources its models read are landed from the store as
  Parquet in the lake (`SPARK_LAKE_DIR`, raw partitioned by export date) and registered
  in Spark's catalog under the night's schema prefix;
- dbt builds the stage's models and runs their data tests on Spark (`--target spark`),
  into schemas named with the night's prefix (`n<run>_staging`, ...): a failed night never
  touches the schemas analysts read;
- after each stage the models are mirrored into the store: the marts as tables (the
  segmentation, the GX checks, publishing and the report read them as on DuckDB), the other
  models as views over Spark's Parquet files;
- publishing writes the analysts' DuckDB file as on DuckDB, then points Spark's `marts`
  views at the night's tables and drops the schemas of every other night.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipelines.spark.lake import land_table, register_parquet_tables
from pipelines.sql import quote_ident, sql_literal

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

ENGINES = ("duckdb", "spark")
# `n`, 12 letters or digits of the run id, `_`: the schemas and lake folder of one night.
NIGHT_PREFIX = re.compile(r"n[0-9a-z]{12}_")
# Spark's `marts` schema: views on the published night's tables, for Spark's own readers.
PUBLISHED_SCHEMA = "marts"


class SparkResource(ConfigurableResource):
    """Which engine builds the night, and the Spark it uses.

    With `engine="spark"` and no `remote`, the first step that needs Spark starts a local
    Spark Connect server for the run (in the store's folder: its warehouse, its catalog,
    its log) and the run stops it at its end; a run that never reaches dbt (nightly_ingest)
    never starts one."""

    engine: str = "duckdb"  # WAREHOUSE_ENGINE: duckdb | spark
    remote: str = ""  # SPARK_REMOTE: sc://host:port of a Spark Connect server; "": local
    lake_dir: str = ""  # SPARK_LAKE_DIR: where raw lands as Parquet; "": <store folder>/lake
    master: str = "local[2]"  # SPARK_MASTER: the local server's master
    driver_memory: str = "3g"  # SPARK_DRIVER_MEMORY: the local server's memory

    _stack: ExitStack | None = PrivateAttr(default=None)
    _url: str | None = PrivateAttr(default=None)
    _session: Any = PrivateAttr(default=None)
    _run_id: str = PrivateAttr(default="adhoc")

    @property
    def enabled(self) -> bool:
        engine = self.engine.strip().lower()
        if engine not in ENGINES:
            raise ValueError(f"WAREHOUSE_ENGINE must be one of {ENGINES}, not {self.engine!r}")
        return engine == "spark"

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # A re-execution of a failed run (its root's prefix) finds the tables of the stages
        # that succeeded before.
        run = context.dagster_run if context is not None else None
        self._run_id = (run.root_run_id or run.run_id) if run is not None else "adhocadhocadh"
        self.enabled  # noqa: B018 - a wrong engine fails the run before any step

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the session and stop the local server this run started, if any."""
        stack, self._stack, self._url, self._session = self._stack, None, None, None
        if stack is not None:
            stack.close()

    @property
    def night_prefix(self) -> str:
        """The schema prefix of this run's build: `n` and the run id's first 12 hex digits."""
        return "n" + "".join(c for c in self._run_id if c.isalnum())[:12].lower() + "_"

    def lake(self, store_dir: Path) -> Path:
        return Path(self.lake_dir).expanduser() if self.lake_dir else store_dir / "lake"

    def url(self, store_dir: Path) -> str:
        """The Spark Connect URL of this run: SPARK_REMOTE, else a local server started now
        (once per run) with its warehouse and catalog in the store's folder."""
        if self.remote:
            return self.remote
        if self._url is None:
            from pipelines.spark.server import local_spark_connect

            self._stack = ExitStack()
            self._url = self._stack.enter_context(
                local_spark_connect(
                    warehouse_dir=store_dir / "spark-warehouse",
                    log_file=store_dir / "spark-server.log",
                    master=self.master,
                    driver_memory=self.driver_memory,
                    metastore_dir=store_dir / "spark-metastore",
                )
            )
        return self._url

    def session(self, store_dir: Path) -> SparkSession:
        if self._session is None:
            from pipelines.spark.server import connect

            self._session = connect(self.url(store_dir))
        return self._session


def stage_sources(nodes: Mapping[str, Mapping[str, Any]], unique_ids: Iterable[str]) -> list:
    """(schema, table) of every dbt source the given models read, sorted."""
    wanted: set[tuple[str, str]] = set()
    for unique_id in unique_ids:
        for parent in nodes[unique_id].get("depends_on", {}).get("nodes", []):
            if parent.startswith("source."):
                _, _, source, table = parent.split(".", 3)
                wanted.add((source, table))
    return sorted(wanted)


def land_sources(
    spark: SparkSession,
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    prefix: str,
    tables: Iterable[tuple[str, str]],
) -> dict[str, int]:
    """Copy each store table to `lake/<prefix>/<schema>/<table>/` as Parquet and register
    it in Spark as `<prefix><schema>.<table>` (pipelines/spark/lake.py: types, the raw
    tables' folders per export date); returns the rows landed per table.

    Each night lands into its own folder, so what an erasure or retention removed from the
    store is gone from the lake once that night publishes (older nights' folders are then
    deleted), and a failed night never changes what the published views read."""
    tables = sorted(set(tables))
    landed: dict[str, int] = {}
    for schema, table in tables:
        land_table(con, lake / prefix, schema, table)
        relation = f"{quote_ident(schema)}.{quote_ident(table)}"
        landed[f"{schema}.{table}"] = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    register_parquet_tables(spark, lake / prefix, tables, schema_prefix=prefix)
    return landed


def table_location(spark: SparkSession, relation: str) -> str:
    """Where Spark keeps a table's files, as a path DuckDB reads (`file:` dropped)."""
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {relation}").collect()
    location = next((r[1] for r in rows if r[0] == "Location"), None)
    if location is None:
        raise LookupError(f"Spark reports no location for {relation}")
    return location.removeprefix("file://").removeprefix("file:")


def _parquet_select(con: duckdb.DuckDBPyConnection, location: str) -> str:
    """SELECT of a Spark table's Parquet files, its timestamps as DuckDB's TIMESTAMP (UTC):
    Spark writes instants, which DuckDB reads as TIMESTAMP WITH TIME ZONE."""
    source = f"read_parquet({sql_literal(location.rstrip('/') + '/*.parquet')})"
    columns = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    items = [
        f"{quote_ident(name)}::TIMESTAMP AS {quote_ident(name)}"
        if typ.startswith("TIMESTAMP WITH TIME ZONE")
        else quote_ident(name)
        for name, typ, *_ in columns
    ]
    return f"SELECT {', '.join(items)} FROM {source}"


def mirror_models(
    spark: SparkSession,
    con: duckdb.DuckDBPyConnection,
    relations: Iterable[tuple[str, str]],
    prefix: str,
    tables_in: tuple[str, ...] = ("marts",),
) -> None:
    """The stage's models, as Spark built them, in the store under their own names: the
    schemas `tables_in` as tables (sorted by every column: the same rows give the same
    table whatever order Spark's files hold them in), the others as views on the files."""
    for schema, name in sorted(set(relations)):
        select = _parquet_select(con, table_location(spark, f"{prefix}{schema}.{name}"))
        target = f"{quote_ident(schema)}.{quote_ident(name)}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        existing = con.execute(
            "SELECT table_type FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()
        if existing is not None:
            kind = "VIEW" if existing[0] == "VIEW" else "TABLE"
            con.execute(f"DROP {kind} {target}")
        if schema in tables_in:
            con.execute(f"CREATE TABLE {target} AS {select} ORDER BY ALL")
        else:
            con.execute(f"CREATE VIEW {target} AS {select}")


def publish_views(spark: SparkSession, lake: Path, prefix: str) -> list[str]:
    """Spark's `marts.<table>` become views on this night's tables, then every other
    night's schemas (a failed night's included) and lake folders are dropped; returns the
    dropped schemas."""
    marts = f"{prefix}{PUBLISHED_SCHEMA}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {PUBLISHED_SCHEMA}")
    for row in sorted(spark.catalog.listTables(marts), key=lambda t: t.name):
        spark.sql(
            f"CREATE OR REPLACE VIEW {PUBLISHED_SCHEMA}.{row.name} AS "
            f"SELECT * FROM {marts}.{row.name}"
        )
    dropped = []
    for database in sorted(d.name for d in spark.catalog.listDatabases()):
        if is_night_schema(database) and not database.startswith(prefix):
            spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
            dropped.append(database)
    if lake.is_dir():
        for folder in lake.iterdir():
            if NIGHT_PREFIX.fullmatch(folder.name) and folder.name != prefix:
                shutil.rmtree(folder)
    return dropped


def is_night_schema(name: str) -> bool:
    """A schema of one night's build: the night's prefix, then the schema's own name."""
    return bool(NIGHT_PREFIX.match(name)) and len(name) > len("n123456789abc_")
