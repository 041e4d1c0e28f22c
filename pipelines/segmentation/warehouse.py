"""DuckDB I/O: `run_segmentation` reads marts.customer_features and writes marts.* and
history.* in one transaction (the segment history as spells: pipelines/segment_spells.py;
how each run chose its k: history.segment_runs, pipelines/segmentation/warm.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from pipelines.segment_spells import check_no_later_run, used_segment_ids, write_run
from pipelines.segmentation.config import SegmentationConfig
from pipelines.segmentation.profiles import CATEGORICAL_SOURCES, MEAN_SOURCES, PROFILE_MEANS
from pipelines.segmentation.segment import segment_customers
from pipelines.segmentation.warm import read_previous_run, run_record
from pipelines.sql import transaction
from pipelines.warehouse_tables import (
    SEGMENT_RUNS,
    create_python_owned_tables,
    latest_export_date,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _write(con, table: str, df: pd.DataFrame, as_of, where_as_of: bool, order: str) -> None:
    con.register("_seg_df", df)
    try:
        if where_as_of:
            con.execute(f"DELETE FROM {table} WHERE as_of_date = ?", [as_of])
        else:
            con.execute(f"DELETE FROM {table}")
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT *, ?::DATE AS as_of_date "
            f"FROM _seg_df ORDER BY {order}",
            [as_of],
        )
    finally:
        con.unregister("_seg_df")


def ensure_profile_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Add the mean-feature columns (PROFILE_MEANS) to marts.segment_profiles if missing."""
    for col in PROFILE_MEANS:
        con.execute(f"ALTER TABLE marts.segment_profiles ADD COLUMN IF NOT EXISTS {col} DOUBLE")


def run_segmentation(
    con: duckdb.DuckDBPyConnection,
    config: SegmentationConfig | None = None,
    spark: SparkSession | None = None,
    spark_features: str = "",
) -> dict:
    """Read marts.customer_features, segment, write marts.* and history.* in one transaction.

    With `spark`, the features are Spark's table `spark_features` and the customers are
    sampled, fitted and predicted there (pipelines/segmentation/spark.py); what is written
    to the store is the same."""
    config = config or SegmentationConfig()
    create_python_owned_tables(con)
    ensure_profile_columns(con)
    as_of = latest_export_date(con)
    if as_of is None:
        raise ValueError("raw.exports is empty: no as-of date")
    check_no_later_run(con, as_of)  # before clustering, which takes minutes at scale
    available = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = 'customer_features'"
        ).fetchall()
    }
    numeric = ({"orders_count", "frequency", *config.features} | MEAN_SOURCES) & available
    select = ["customer_id"] + [f'CAST("{c}" AS DOUBLE) AS "{c}"' for c in sorted(numeric)]
    select += [f'"{c}"' for c in CATEGORICAL_SOURCES if c in available]
    previous = con.execute(
        "SELECT segment_id, segment_name, feature, value FROM history.segment_centroids "
        "WHERE as_of_date = (SELECT max(as_of_date) FROM history.segment_centroids "
        "WHERE as_of_date < ?) ORDER BY segment_id, feature",
        [as_of],
    ).df()
    used = used_segment_ids(con, as_of)
    previous = previous if len(previous) else None
    # The record of the run that wrote those centroids (none in a store of the release
    # before warm starts: that night scans, pipelines/segmentation/warm.py).
    previous_run = read_previous_run(
        con.execute(
            "SELECT as_of_date, method, k, last_scan_date, last_scan_silhouette "
            "FROM history.segment_runs WHERE as_of_date = (SELECT max(as_of_date) "
            "FROM history.segment_centroids WHERE as_of_date < ?)",
            [as_of],
        ).fetchall()
    )
    if spark is None:
        # In stored order: the model writes it by customer_id, and `_prepare` sorts only
        # when it is not (DuckDB's sort for ORDER BY took ~0.2 GB per million customers).
        features = con.execute(f"SELECT {', '.join(select)} FROM marts.customer_features").df()
        result = segment_customers(features, previous, used, config, previous_run, as_of)
        assignments = result.assignments
    else:
        from pipelines.segmentation.spark import segment_on_spark

        frame = spark.sql(f"SELECT {', '.join(select)} FROM {spark_features}".replace('"', "`"))
        result = segment_on_spark(spark, frame, previous, used, config, previous_run, as_of)
        # three strings per customer, through Arrow; sorted when written
        assignments = result.assignments.toPandas()
    with transaction(con):
        _write(con, "marts.customer_segments", assignments, as_of, False, "customer_id")
        _write(con, "marts.segment_profiles", result.profiles, as_of, False, "segment_id")
        write_run(con, assignments, as_of)
        _write(
            con, "history.segment_centroids", result.centroids, as_of, True, "segment_id, feature"
        )
        _write(con, SEGMENT_RUNS, run_record(result.metadata, as_of), as_of, True, "as_of_date")
    return {"as_of_date": as_of.isoformat(), **result.metadata}
