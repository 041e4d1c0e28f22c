"""The GX mart checks' frames selected in Spark equal the ones selected in DuckDB.

The same rows (written once by DuckDB as Parquet, read by both engines, as the lake is) with
planted bad rows: the frame Spark selects (pipelines/quality/spark.py) must be the frame
DuckDB selects (same rows, order and dtypes), compacted (threshold 0) and whole (the
default threshold), and GX must give the same outcome on both.  Skipped only without Java.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from pipelines import quality
from pipelines.quality.compact import duckdb_check_frame
from pipelines.quality.spark import spark_check_frame
from tests.test_perf_quality import _features

SCHEMA = "gx_on_spark"
N = 300


def _bad_features() -> pd.DataFrame:
    """300 clean customer_features rows and one of each kind of bad row."""
    df = _features(N, 5)
    df.loc[7, "customer_id"] = df.loc[3, "customer_id"]  # duplicate key
    df.loc[17, "customer_id"] = None  # null key
    df.loc[11, "refund_rate"] = 1.5  # out of range
    df.loc[14, "rfm_segment"] = "Sleepy"  # outside the set
    df.loc[15, "churn_risk"] = None  # null
    df.loc[16, "rfm_monetary_score"] = 6  # out of range (an integer column)
    df.loc[18, "recency"] = 11.0  # T < recency: the column pair
    df.loc[19, "nps_avg"] = float("nan")  # NaN: null for GX, not a failure of `between`
    return df


def _fx() -> pd.DataFrame:
    """fx_rates-like rows for the suite with a regex (raw_fx_rates: `^[A-Z]{3}$`)."""
    currency = ["EUR", "GBP", "usd", "EURO", "JPY", "GBP", None, "CH\nF", "SEK\n", "NOK"]
    return pd.DataFrame(
        {
            "currency": currency,
            "rate_to_base": [1.1, 1.3, 1.0, 1.1, 0.007, 1.3, 2.0, 1.0, 0.1, -0.1],
            "_line_number": range(2, 2 + len(currency)),
        }
    )


@pytest.fixture(scope="module")
def tables(spark, tmp_path_factory: pytest.TempPathFactory):
    """The rows in an in-memory DuckDB (schema gx_on_spark) and as Spark tables of the same
    Parquet files (database gx_on_spark): monetary_value as DECIMAL(18,4), rfm scores as
    INTEGER, referred_by_customer_id (all null) as VARCHAR, as the marts have them."""
    folder = tmp_path_factory.mktemp("gx_on_spark")
    con = duckdb.connect()
    con.execute(f"CREATE SCHEMA {SCHEMA}")
    features, fx = _bad_features(), _fx()  # noqa: F841 - read by DuckDB by name
    con.execute(
        f"CREATE TABLE {SCHEMA}.features AS SELECT * REPLACE ("
        "CAST(monetary_value AS DECIMAL(18,4)) AS monetary_value, "
        "CAST(rfm_recency_score AS INTEGER) AS rfm_recency_score, "
        "CAST(rfm_monetary_score AS INTEGER) AS rfm_monetary_score, "
        "CAST(referred_by_customer_id AS VARCHAR) AS referred_by_customer_id) FROM features"
    )
    con.execute(f"CREATE TABLE {SCHEMA}.fx AS SELECT * FROM fx")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}").collect()
    for table in ("features", "fx"):
        path = folder / f"{table}.parquet"
        con.execute(f"COPY {SCHEMA}.{table} TO '{path}' (FORMAT parquet)")
        spark.sql(f"DROP TABLE IF EXISTS {SCHEMA}.{table}").collect()
        spark.read.parquet(str(path)).write.saveAsTable(f"{SCHEMA}.{table}")
    yield con
    con.close()
    spark.sql(f"DROP DATABASE IF EXISTS {SCHEMA} CASCADE").collect()


CASES = [("features", "marts_customer_features"), ("fx", "raw_fx_rates")]


def _frames(spark, con, table: str, suite: str, min_rows: int | None):
    duck = duckdb_check_frame(con, SCHEMA, table, suite, min_rows)
    on_spark = spark_check_frame(spark, suite, f"{SCHEMA}.{table}", min_rows)
    return duck, on_spark


@pytest.mark.parametrize(("table", "suite"), CASES)
@pytest.mark.parametrize("min_rows", [0, None])
def test_spark_selects_the_frame_duckdb_selects(spark, tables, table, suite, min_rows):
    duck, on_spark = _frames(spark, tables, table, suite, min_rows)
    rows = N if table == "features" else len(_fx())
    assert duck.rows == on_spark.rows == rows
    assert duck.compact == on_spark.compact == (min_rows == 0)
    assert on_spark.origin == {"frame_engine": "spark", "frame_table": f"{SCHEMA}.{table}"}
    assert list(on_spark.df.dtypes) == list(duck.df.dtypes)
    pd.testing.assert_frame_equal(on_spark.df, duck.df)
    if min_rows is None:
        assert len(duck.df) == rows


def test_the_compact_frames_hold_the_planted_rows(spark, tables):
    """Independently of DuckDB: the rows Spark pre-selects are the planted ones, in key
    order (nulls last, the duplicate's two rows by their other columns)."""
    frame = spark_check_frame(spark, "marts_customer_features", f"{SCHEMA}.features", 0)
    df = _bad_features()
    planted = df.loc[[3, 7, 11, 14, 15, 16, 18, 17]]  # not 19: a null passes `between`
    expected_ids = sorted(planted["customer_id"].dropna()) + [None]
    assert frame.df["customer_id"].tolist()[:-1] == expected_ids[:-1]
    assert pd.isna(frame.df["customer_id"].iloc[-1])
    # the nps_class column holds nulls in clean rows too (not in the suite's set rule: GX
    # ignores nulls there), so exactly the planted rows are candidates
    assert len(frame.df) == len(planted)
    assert frame.df["monetary_value"].dtype == "float64"  # DECIMAL(18,4), as DuckDB gives it
    dup = frame.df[frame.df["customer_id"] == df.loc[3, "customer_id"]]
    assert dup["frequency"].tolist() == sorted(df.loc[[3, 7], "frequency"])
    fx = spark_check_frame(spark, "raw_fx_rates", f"{SCHEMA}.fx", 0)
    # GX fails usd, EURO, CH\nF (regex), the null, the duplicated GBP, NOK (rate <= 0);
    # "SEK\n" passes GX (Python's `$` matches before a final newline) but is a full-match
    # candidate on both engines (a superset: GX decides)
    expected = ["CH\nF", "EURO", "GBP", "GBP", "NOK", "SEK\n", "usd"]
    assert fx.df["currency"].tolist()[:-1] == expected
    assert len(fx.df) == len(expected) + 1 and pd.isna(fx.df["currency"].iloc[-1])


@pytest.mark.parametrize(("table", "suite"), CASES)
@pytest.mark.parametrize("min_rows", [0, None])
def test_gx_gives_the_same_outcome_on_both_engines(spark, tables, table, suite, min_rows):
    duck, on_spark = _frames(spark, tables, table, suite, min_rows)
    outcomes = [
        quality.validate_frame(suite, f.df, element_count=f.rows if f.compact else None)
        for f in (duck, on_spark)
    ]
    assert outcomes[1].to_dict() == outcomes[0].to_dict()
    failed = {(f.type, f.column): f.unexpected_count for f in outcomes[1].failures}
    rows = N if table == "features" else len(_fx())
    assert {r.element_count for r in outcomes[1].results} == {rows}
    if table == "features":
        assert failed == {
            ("expect_column_values_to_not_be_null", "customer_id"): 1,
            ("expect_column_values_to_be_unique", "customer_id"): 2,
            ("expect_column_values_to_be_between", "refund_rate"): 1,
            ("expect_column_values_to_be_between", "rfm_monetary_score"): 1,
            ("expect_column_values_to_be_in_set", "rfm_segment"): 1,
            ("expect_column_values_to_not_be_null", "churn_risk"): 1,
            ("expect_column_pair_values_a_to_be_greater_than_b", "T,recency"): 1,
        }
    else:
        assert failed == {
            ("expect_column_values_to_not_be_null", "currency"): 1,
            ("expect_column_values_to_be_unique", "currency"): 2,
            ("expect_column_values_to_be_between", "rate_to_base"): 1,
            ("expect_column_values_to_match_regex", "currency"): 3,
        }
