"""Segmentation on Spark gives `segment_customers`' outcome on the same rows.

Synthetic customers (tests/test_segmentation.py's groups, prospects, a few NULLs) go to a
Spark Connect server as DOUBLE columns, as warehouse.py selects them; `segment_on_spark`
must return every assignment, profile, centroid and metadata value the pandas path does.
A small `fit_sample_size` and `sample_size` exercise the sampled path (positions drawn on
the driver, found in Spark); a second run, fitted on every clustered customer, checks
previous centroids and used ids; a night 2 warm-started, and one whose warm model fails the
guard. Five segmentations in all: each costs a few Spark jobs.

The server: the Spark tests' own (tests/spark/conftest.py). Skipped only without `java`.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipelines.segmentation import SegmentationConfig, segment_customers
from pipelines.segmentation.spark import segment_on_spark
from pipelines.segmentation.warm import PreviousRun
from tests.test_segmentation import add_prospects, make_customers

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs java")

SAMPLED = SegmentationConfig(fit_sample_size=1_000, sample_size=500)
# n <= fit_sample_size: the fit uses every clustered customer, silhouettes a sample
WHOLE = SegmentationConfig(sample_size=500)
FIVE = {"champions": 700, "new": 800, "detractors": 600, "big_spenders": 400, "bargain": 300}


def customers(sizes: dict[str, int], seed: int, prospects: int) -> pd.DataFrame:
    """Groups plus prospects, with NULLs: no frequency (a prospect despite its orders), no
    survey answers (imputed; left out of the profile means)."""
    df = add_prospects(make_customers(sizes, seed=seed), prospects).drop(columns="group")
    df.loc[df.index[::397], "frequency"] = np.nan
    df.loc[df.index[5::61], ["nps_avg", "csat_avg", "nps_class"]] = np.nan
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any row order


def to_spark(spark, df: pd.DataFrame):
    """Numeric columns as DOUBLE, strings as strings (object: pyspark cannot convert
    pandas' arrow-backed strings)."""
    return spark.createDataFrame(
        df.astype({c: object for c in df.columns if df[c].dtype != np.float64})
    )


def assert_same(got, expected) -> None:
    """Every assignment, profile, centroid and metadata value."""
    a = got.assignments.toPandas().sort_values("customer_id", kind="mergesort")
    pd.testing.assert_frame_equal(
        a.reset_index(drop=True).astype(object), expected.assignments.astype(object)
    )
    pd.testing.assert_frame_equal(got.profiles, expected.profiles)
    pd.testing.assert_frame_equal(got.centroids, expected.centroids)
    assert got.metadata == expected.metadata


@pytest.fixture(scope="module")
def sampled(spark):
    df = customers(FIVE, seed=1, prospects=200)
    return df, segment_on_spark(spark, to_spark(spark, df), None, set(), SAMPLED)


def test_sampled_fit_equals_pandas(sampled):
    df, got = sampled
    assert len(df) == 3_000 and got.metadata["fit_on_sample"] is True
    assert got.metadata["n_clustered"] > SAMPLED.fit_sample_size
    assert got.metadata["k"] == 5 and len(got.metadata["k_scan"]) == 6
    assert_same(got, segment_customers(df, None, set(), SAMPLED))


def test_second_run_whole_fit_keeps_ids_and_skips_used_ones(spark, sampled):
    """New noise and a new group, fitted on every clustered customer (n <= fit_sample_size):
    the five clusters keep their ids (matched to the first run's centroids), the new one
    gets the next id never used (S06 is retired)."""
    _, first = sampled
    df = customers({**FIVE, "rich_detractors": 300}, seed=2, prospects=150)
    used = set(first.profiles["segment_id"]) | {"S06"}
    config = replace(WHOLE, k_max=7)
    got = segment_on_spark(spark, to_spark(spark, df), first.centroids, used, config)
    assert got.metadata["fit_on_sample"] is False and got.metadata["k"] == 6
    matching = got.metadata["matching"]
    assert sorted(matching["matched"]) == ["S01", "S02", "S03", "S04", "S05"]
    assert matching["new_ids"] == ["S07"]
    assert_same(got, segment_customers(df, first.centroids, used, config))


def test_only_prospects(spark):
    df = customers({"new": 1}, seed=0, prospects=10)
    df = df[df["orders_count"] == 0]
    got = segment_on_spark(spark, to_spark(spark, df), None, set(), SAMPLED)
    assert got.metadata["k"] == 0 and got.profiles["segment_id"].tolist() == ["prospects"]
    assert_same(got, segment_customers(df, None, set(), SAMPLED))


def test_warm_start_and_its_rejection_equal_pandas(spark, sampled):
    """Night 2 the next day, sampled fit: the same customers with new noise warm-start
    from night 1 (k kept, no scan); with a group shrunk under the min-share guard the warm
    model is rejected and the k scan runs, as on pandas."""
    _, first = sampled
    d1 = dt.date(2024, 1, 31)
    previous = PreviousRun(d1, "k_scan", 5, d1, first.metadata["silhouette"])
    used = set(first.profiles["segment_id"])
    night = d1 + dt.timedelta(days=1)
    for sizes, method in ((FIVE, "warm_start"), ({**FIVE, "bargain": 40}, "k_scan")):
        df = customers(sizes, seed=2, prospects=150)
        args = (first.centroids, used, SAMPLED, previous, night)
        got = segment_on_spark(spark, to_spark(spark, df), *args)
        assert got.metadata["k_choice"] == method
        assert got.metadata["warm_start"]["accepted"] is (method == "warm_start")
        assert_same(got, segment_customers(df, *args))
