"""`segment_on_spark`: `segment_customers` when the warehouse engine is Spark (issue #12).

The same model on the same rows, without bringing the table to the driver: the fit sample
and the silhouette sample are drawn in Spark and collected; the preprocessor and every
KMeans of the k scan (or the warm start's one KMeans: the policy is warm.py's, shared)
are fitted on the driver exactly as `segment_customers` fits them;
every prediction over all rows runs on the executors (`mapInPandas`, the fitted objects in
the closure), and only small per-batch aggregates come back. The assignments stay a lazy
Spark DataFrame for the caller to write.

Same samples. The pandas path orders the clustered customers by customer_id and draws
positions with `np.random.default_rng(seed)` (`fit_idx`, then `sil_idx`). Here the driver
makes the same rng calls, and each clustered row gets its position in Spark from its key
alone: customer ids are cut into contiguous id ranges (bounds from one random clustered id
per hash group of ids, picked by the job that counts the customers), a row's position is
the number of rows in the earlier ranges plus its `row_number` within its range (a window
partitioned by range, ordered by customer_id); the rows at the drawn positions are joined
back to their features and collected. Spark orders strings by their UTF-8 bytes, which is
Python's (code point) order, so the positions are the pandas path's. Positions from
`spark_partition_id()` of a global sort are avoided on purpose: counting rows per partition
and filtering by position are two executions of the sort, whose partitions may differ
(adaptive coalescing sees different column sets; a shuffled input has no stable row order
for the range sampler), and a different split would silently pick other rows. Ranges only
split the work: any bounds give the same positions. When the samples hold every clustered
row (n <= fit_sample_size), those rows are collected and sorted on the driver exactly as
segment.py sorts them.

Same predictions. Preprocessing and `KMeans.predict` are row-wise, so a row's scaled
features and label do not depend on which batch it is in (barring an exact tie of two
centroid distances, which BLAS blocking could break differently).

Exact quantities: k, k_scan (silhouettes are computed by the same function on the same
sample; min shares from exact counts), labels, ids, names, centroids, segment sizes,
shares and the categorical shares (sums of 0/1).

Nearly exact (equal after ROUND rounding unless a value lies within a few ulps of a
rounding boundary): the profile means and Davies-Bouldin. Both are sums over all rows:
pandas sums each group in row order (Kahan-compensated in `groupby().mean()`, plain
sequential in sklearn's cluster means), which no parallel order can reproduce. Here each
batch's sum is error-free (a TwoSum tree: the sum as an unevaluated hi + lo pair), Spark
groups the batch partials and the driver adds them with `math.fsum`, so a sum is the
correctly rounded exact sum (to within eps^2 of the sum of magnitudes) - within an ulp or
so of pandas' sum, instead of a plain parallel sum's error, which grows with the rows.

Executors need the `pipelines` package importable (the preprocessor's log1p step is a
function of `pipelines.segmentation.model`, pickled by reference); this module's own
worker functions are pickled by value, so executors with an older install still run them.
`features` is read by several jobs (counts, samples, the k scan, profiles, and the
assignments when the caller writes them): cache it if it is expensive to compute.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from threadpoolctl import threadpool_limits

from pipelines.segmentation.config import (
    PROSPECTS_ID,
    PROSPECTS_NAME,
    ROUND,
    SegmentationConfig,
)
from pipelines.segmentation.ids import match_ids
from pipelines.segmentation.model import (
    build_preprocessor,
    order_by_size,
    silhouettes,
    to_original,
    transform,
)
from pipelines.segmentation.profiles import PROFILE_MEANS
from pipelines.segmentation.segment import (
    finish_profiles,
    initial_metadata,
    name_segments,
    prospect_labels,
)
from pipelines.segmentation.warm import (
    PreviousRun,
    choose_model,
    chosen_row,
    record_choice,
    warm_init,
)

if TYPE_CHECKING:
    import datetime as dt

    from pyspark.sql import Column, DataFrame, SparkSession
    from sklearn.pipeline import Pipeline

HAS_ORDER = "_has_order"
POSITION = "_pos"
BUCKET = "_bucket"
# One value column per PROFILE_MEANS output (source mean, or 0/1 share indicator), named
# apart from the features (avg_order_value is both a feature and a profile column).
PROFILE_PREFIX = "_profile__"
# Hash groups of ids: one random clustered id per group places the ranges' bounds.
ID_GROUPS = 4096
# Ranges for the positions: one per shuffle partition, at least one per ROWS_PER_RANGE
# rows, at most one per MIN_ROWS_PER_RANGE.
ROWS_PER_RANGE = 1_000_000
MIN_ROWS_PER_RANGE = 1_000
ASSIGNMENT_SCHEMA = "customer_id string, segment_id string, segment_name string"
SCAN_SCHEMA = "k int, label int, n long, hi array<double>, lo array<double>"
FINAL_SCHEMA = "seg int, n long, cnt array<long>, hi array<double>, lo array<double>"


@dataclass
class SparkSegmentation:
    """`SegmentationResult` with the assignments left in Spark: one row per customer, too
    many for the driver at scale; profiles and centroids are one row per segment."""

    assignments: DataFrame  # Spark, lazy: customer_id, segment_id, segment_name (unordered)
    profiles: pd.DataFrame  # PROFILE_COLUMNS
    centroids: pd.DataFrame  # segment_id, segment_name, feature, value (original units)
    metadata: dict = field(default_factory=dict)


# ------------------------------------------------------------------- exact batch sums


def _sum_parts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums of `a` (rows x columns) as hi + lo, equal to the exact sums to within
    ~log2(rows) eps^2 of the sums of magnitudes: a pairwise tree of TwoSum steps (each
    error-free, Knuth), their rounding errors carried in lo."""
    hi = np.asarray(a, dtype=np.float64)
    if len(hi) == 0:
        return np.zeros(hi.shape[1:]), np.zeros(hi.shape[1:])
    lo = np.zeros_like(hi)
    while len(hi) > 1:
        if len(hi) % 2:
            hi = np.concatenate([hi, np.zeros_like(hi[:1])])
            lo = np.concatenate([lo, np.zeros_like(lo[:1])])
        x, y = hi[0::2], hi[1::2]
        s = x + y
        z = s - x
        lo = lo[0::2] + lo[1::2] + ((x - (s - z)) + (y - z))
        hi = s
    return hi[0], lo[0]


def _fsum_parts(his, los) -> np.ndarray:
    """Correctly rounded column sums of per-batch (hi, lo) partials (lists of vectors)."""
    parts = np.vstack([np.vstack(list(his)), np.vstack(list(los))])
    return np.array([math.fsum(parts[:, j]) for j in range(parts.shape[1])])


# -------------------------------------------------------------- executor-side workers


def _task_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """A task's non-empty batches, with BLAS on one thread: Spark already runs one task
    per core."""
    with threadpool_limits(limits=1):
        yield from (pdf for pdf in batches if len(pdf))


def _scan_worker(
    pre: Pipeline, models: list[KMeans], feats: list[str]
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Every k of the scan over every clustered row: per batch and label, the row count
    (the min-share guard) and the exact sum of the scaled rows (Davies-Bouldin's cluster
    means, needed only for the k chosen, which is not known yet)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in _task_batches(batches):
            X = pre.transform(pdf[feats])
            rows = []
            for km in models:
                labels = km.predict(X)
                for label in np.unique(labels):
                    hi, lo = _sum_parts(X[labels == label])
                    n = int((labels == label).sum())
                    rows.append((km.n_clusters, int(label), n, hi, lo))
            yield pd.DataFrame(rows, columns=["k", "label", "n", "hi", "lo"])

    return run


def _labels(pre: Pipeline | None, km: KMeans | None, remap, pdf: pd.DataFrame, feats, k: int):
    """Canonical labels of a batch (k for prospects) and the clustered rows' scaled
    features (None when the batch has none, or nothing is clustered: km None)."""
    has = pdf[HAS_ORDER].to_numpy(dtype=bool)
    seg = np.full(len(pdf), k, dtype=np.int64)
    X = None
    if km is not None and has.any():
        X = pre.transform(pdf.loc[has, feats])
        seg[has] = remap[km.predict(X)]
    return seg, has, X


def _final_worker(
    pre: Pipeline | None,
    km: KMeans | None,
    remap: np.ndarray,
    feats: list[str],
    value_columns: list[str],
    centers_x: np.ndarray | None,
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The chosen model over all rows: per batch and segment, the row count and, for each
    profile value column and the distance to the segment's mean of X (Davies-Bouldin),
    the non-null count and the exact sum."""
    k = len(remap)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in _task_batches(batches):
            seg, has, X = _labels(pre, km, remap, pdf, feats, k)
            dist = np.full(len(pdf), np.nan)
            if X is not None and centers_x is not None:
                # sklearn's formula (davies_bouldin_score calls pairwise_distances)
                own = seg[has]
                d = pairwise_distances(X, centers_x)
                dist[has] = d[np.arange(len(own)), own]
            values = np.column_stack(
                [pdf[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in value_columns] + [dist]
            )
            valid = ~np.isnan(values)
            filled = np.where(valid, values, 0.0)  # adding zeros leaves a sum exact
            rows = []
            for s in np.unique(seg):
                mask = seg == s
                hi, lo = _sum_parts(filled[mask])
                cnt = valid[mask].sum(axis=0).astype(np.int64)
                rows.append((int(s), int(mask.sum()), cnt, hi, lo))
            yield pd.DataFrame(rows, columns=["seg", "n", "cnt", "hi", "lo"])

    return run


def _assign_worker(
    pre: Pipeline,
    km: KMeans,
    remap: np.ndarray,
    feats: list[str],
    ids: list[str],
    names: list[str],
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """customer_id -> segment_id, segment_name; prospects get the fixed segment."""
    k = len(remap)
    id_of = np.asarray([*ids, PROSPECTS_ID], dtype=object)
    name_of = np.asarray([*names, PROSPECTS_NAME], dtype=object)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in _task_batches(batches):
            seg, _, _ = _labels(pre, km, remap, pdf, feats, k)
            yield pd.DataFrame(
                {
                    "customer_id": pdf["customer_id"].to_numpy(dtype=object),
                    "segment_id": id_of[seg],
                    "segment_name": name_of[seg],
                }
            )

    return run


# ------------------------------------------------------------------ driver-side steps


def _prepare(features: DataFrame, config: SegmentationConfig) -> DataFrame:
    """`segment.py`'s `_prepare` in Spark: string ids, DOUBLE features with NaN as NULL
    (pandas skips NaN where Spark would propagate it), the has-order flag, one value
    column per profile mean."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    types = {f.name: f.dataType for f in features.schema.fields}
    missing = [c for c in ("customer_id", "orders_count", *config.features) if c not in types]
    if missing:
        raise ValueError(f"customer_features lacks columns {missing}")

    def num(c: str) -> Column:
        x = F.col(c).cast("double")
        return F.when(F.isnan(x), F.lit(None).cast("double")).otherwise(x)

    has_order = F.coalesce(num("orders_count"), F.lit(0.0)) > 0
    if "frequency" in types:
        numeric = isinstance(types["frequency"], NumericType)
        has_order &= (num("frequency") if numeric else F.col("frequency")).isNotNull()
    cols = [F.col("customer_id").cast("string").alias("customer_id"), has_order.alias(HAS_ORDER)]
    cols += [num(f).alias(f) for f in config.features]
    for out, (src, agg) in PROFILE_MEANS.items():
        if src not in types:
            value = F.lit(None).cast("double")
        elif agg == "mean":
            value = num(src)
        else:
            hit = (F.col(src).cast("string") == F.lit(agg)).cast("double")
            value = F.when(F.col(src).isNull(), F.lit(None).cast("double")).otherwise(hit)
        cols.append(value.alias(PROFILE_PREFIX + out))
    return features.select(*cols)


def _draw_positions(n: int, config: SegmentationConfig) -> tuple[np.ndarray, np.ndarray]:
    """fit_idx and sil_idx: `segment_customers`' rng calls, in its order."""
    rng = np.random.default_rng(config.seed)
    fit_idx = (
        np.sort(rng.choice(n, config.fit_sample_size, replace=False))
        if n > config.fit_sample_size
        else np.arange(n)
    )
    sil_idx = np.sort(rng.choice(n, min(n, config.sample_size), replace=False))
    return fit_idx, sil_idx


def _bucket_of(column: Column, bounds: list[str], first: int = 0) -> Column:
    """The number of `bounds` (sorted) <= the value: a binary search as nested CASEs."""
    from pyspark.sql import functions as F

    if not bounds:
        return F.lit(first)
    mid = len(bounds) // 2
    return F.when(column < F.lit(bounds[mid]), _bucket_of(column, bounds[:mid], first)).otherwise(
        _bucket_of(column, bounds[mid + 1 :], first + mid + 1)
    )


def _totals(base: DataFrame) -> tuple[int, int, list[str]]:
    """Customers and clustered customers (raising on a repeated customer_id), and a few
    random clustered ids to place the ranges' bounds, in one job: per hash group of ids,
    the counts and the id with the smallest second hash (a random member)."""
    from pyspark.sql import functions as F

    # min_by skips NULL orderings: prospects never win
    draw = F.when(F.col(HAS_ORDER), F.xxhash64("customer_id", F.lit("bounds")))
    stats = _to_pandas(
        base.groupBy(F.pmod(F.xxhash64("customer_id"), F.lit(ID_GROUPS)).alias("g")).agg(
            F.count(F.lit(1)).alias("n"),
            F.count_distinct("customer_id").alias("ids"),
            F.sum(F.col(HAS_ORDER).cast("long")).alias("clustered"),
            F.min_by("customer_id", draw).alias("id"),
        )
    )
    n, clustered = int(stats["n"].sum()), int(stats["clustered"].fillna(0).sum())
    if int(stats["ids"].sum()) != n:
        raise ValueError("customer_id is not unique in customer_features")
    return n, clustered, sorted(stats["id"].dropna().astype(str))


def _sample_rows(
    spark: SparkSession,
    clustered: DataFrame,
    n: int,
    positions: np.ndarray,
    feats: list[str],
    ids: list[str],
) -> pd.DataFrame:
    """The clustered rows at `positions` (in customer_id order), indexed by position;
    `ids`: random clustered ids, sorted, for the ranges' bounds."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if len(positions) == n:  # all of them: the driver sorts them as segment.py does
        pdf = _to_pandas(clustered.select("customer_id", *feats))
        return pdf.sort_values("customer_id", kind="mergesort", ignore_index=True)
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or 1)
    ranges = min(max(partitions, -(-n // ROWS_PER_RANGE)), max(1, n // MIN_ROWS_PER_RANGE))
    bounds = sorted({ids[len(ids) * i // ranges] for i in range(1, ranges)}) if ids else []
    keyed = clustered.select("customer_id", _bucket_of(F.col("customer_id"), bounds).alias(BUCKET))
    # A range's first position: the rows in the earlier ranges (a window over the one row
    # per range, all in one partition on purpose), in the same job as the positions.
    earlier = Window.partitionBy(F.lit(0)).orderBy(BUCKET)
    earlier = earlier.rowsBetween(Window.unboundedPreceding, -1)
    offsets = keyed.groupBy(BUCKET).count()
    offsets = offsets.select(BUCKET, F.coalesce(F.sum("count").over(earlier), F.lit(0)).alias("o"))
    in_range = F.row_number().over(Window.partitionBy(BUCKET).orderBy("customer_id"))
    placed = keyed.select("customer_id", BUCKET, in_range.alias("r"))
    placed = placed.join(F.broadcast(offsets), BUCKET)
    placed = placed.select(
        "customer_id", (F.col("o") + F.col("r") - 1).cast("long").alias(POSITION)
    )
    wanted = spark.createDataFrame(pd.DataFrame({POSITION: positions.astype(np.int64)}))
    placed = placed.join(F.broadcast(wanted), POSITION)
    sample = clustered.select("customer_id", *feats).join(F.broadcast(placed), "customer_id")
    pdf = _to_pandas(sample).sort_values(POSITION, kind="mergesort").set_index(POSITION)
    if not np.array_equal(pdf.index.to_numpy(), positions):
        raise AssertionError("sampled positions differ from the drawn ones")
    return pdf


def _to_pandas(frame: DataFrame) -> pd.DataFrame:
    """toPandas without the query metrics Spark Connect leaves in `attrs` (pandas would
    deep-copy them on every indexing step)."""
    pdf = frame.toPandas()
    pdf.attrs = {}
    return pdf


def _aggregate(frame: DataFrame, keys: list[str], with_counts: bool) -> pd.DataFrame:
    """Group per-batch partials in Spark: summed row counts, the partial vectors as
    lists (combined exactly on the driver by `_fsum_parts`)."""
    from pyspark.sql import functions as F

    aggs = [F.sum("n").alias("n"), F.collect_list("hi").alias("hi")]
    aggs.append(F.collect_list("lo").alias("lo"))
    if with_counts:
        aggs.append(F.collect_list("cnt").alias("cnt"))
    return _to_pandas(frame.groupBy(*keys).agg(*aggs))


def _scan(
    pre: Pipeline,
    models: list[KMeans],
    clustered: DataFrame,
    feats: list[str],
    d: int,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Label counts and scaled-feature sums per label for every k, over all rows."""
    scanned = clustered.select(*feats).mapInPandas(_scan_worker(pre, models, feats), SCAN_SCHEMA)
    agg = _aggregate(scanned, ["k", "label"], with_counts=False)
    counts = {km.n_clusters: np.zeros(km.n_clusters, dtype=np.int64) for km in models}
    sums = {km.n_clusters: np.zeros((km.n_clusters, d)) for km in models}
    for r in agg.itertuples(index=False):
        counts[r.k][r.label] = r.n
        sums[r.k][r.label] = _fsum_parts(r.hi, r.lo)
    return counts, sums


def _davies_bouldin(sizes: np.ndarray, centers_x: np.ndarray, dist_sums: np.ndarray) -> float:
    """sklearn's davies_bouldin_score from per-cluster aggregates (canonical order, empty
    clusters dropped as its LabelEncoder drops absent labels)."""
    present = sizes > 0
    centroids = centers_x[present]
    intra = dist_sums[present] / sizes[present]
    distances = pairwise_distances(centroids)
    if np.all(np.isclose(intra, 0.0)) or np.all(np.isclose(distances, 0.0)):
        return 0.0
    distances[distances == 0] = np.inf
    scores = np.max((intra[:, None] + intra) / distances, axis=1)
    return float(np.mean(scores))


def segment_on_spark(
    spark: SparkSession,
    features: DataFrame,
    previous_centroids: pd.DataFrame | None,
    used_ids: set[str],
    config: SegmentationConfig | None = None,
    previous_run: PreviousRun | None = None,
    as_of: dt.date | None = None,
) -> SparkSegmentation:
    """Segment one snapshot of customer_features held in Spark; the outcome of
    `segment_customers` on the same rows (see the module docstring for what is exact).

    `features` as `warehouse.py` selects it from marts.customer_features (customer_id,
    the numeric columns, the categorical profile sources); column types may differ
    (numeric ones are cast to DOUBLE)."""
    from pyspark import cloudpickle
    from pyspark.sql import functions as F

    # The workers travel by value (see the module docstring).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    config = config or SegmentationConfig()
    feats = list(config.features)
    base = _prepare(features, config)
    value_columns = [PROFILE_PREFIX + out for out in PROFILE_MEANS]
    n_customers, n_clustered, some_ids = _totals(base)
    clustered = base.filter(F.col(HAS_ORDER))
    names, incentive = prospect_labels()
    meta = initial_metadata(n_customers, n_clustered, config)
    centroid_rows = []
    k, pre, km, centers_x, ids, unique = 0, None, None, None, [], []
    remap = np.zeros(0, dtype=np.int64)
    if n_clustered:
        n = n_clustered
        fit_idx, sil_idx = _draw_positions(n, config)
        meta["fit_on_sample"] = bool(n > config.fit_sample_size)
        wanted = np.union1d(fit_idx, sil_idx)
        sample = _sample_rows(spark, clustered, n, wanted, feats, some_ids)
        with threadpool_limits(limits=config.n_threads):
            pre = build_preprocessor(config.features).fit(sample.loc[fit_idx, feats])
            X_fit = transform(pre, sample.loc[fit_idx, feats], config.batch_size)
            X_sil = transform(pre, sample.loc[sil_idx, feats], config.batch_size)
            d = X_fit.shape[1]

            def evaluate(models):
                sils = silhouettes(X_sil, [m.predict(X_sil) for m in models])
                counts, sums = _scan(pre, models, clustered, feats, d)
                return [
                    (sil, counts[m.n_clusters], (counts[m.n_clusters], sums[m.n_clusters]))
                    for m, sil in zip(models, sils, strict=True)
                ]

            init, warm = warm_init(
                previous_centroids, previous_run, as_of, pre, X_fit, len(X_sil), config
            )
            choice = choose_model(X_fit, n, len(X_sil), evaluate, init, warm, previous_run, config)
            km, meta["k_scan"] = choice.model, choice.k_scan
            if km is None:  # fewer distinct customers than k_min: one segment
                km = KMeans(n_clusters=1, n_init=1, random_state=config.seed).fit(X_fit)
                sizes, k_sums = np.array([n], dtype=np.int64), None
            else:
                sizes, k_sums = choice.payload  # label counts, scaled sums per label
            k = km.n_clusters
            remap = order_by_size(km.cluster_centers_, sizes)
            chosen = chosen_row(choice, k)
            meta["guard_satisfied"] = bool(chosen and chosen["accepted"])
            centers = np.empty_like(km.cluster_centers_)
            centers[remap] = km.cluster_centers_
            meta["k"] = k
            if k > 1:
                meta["silhouette"] = chosen["silhouette"]
                centers_x = np.zeros_like(centers)
                present = sizes > 0
                centers_x[remap[present]] = k_sums[present] / sizes[present][:, None]
            record_choice(meta, choice, previous_run, as_of)
            ids, meta["matching"] = match_ids(centers, previous_centroids, pre, config, used_ids)
            original = to_original(pre, centers, config.features)
        unique, centroid_rows = name_segments(
            centers, original, ids, config.features, names, incentive
        )

    # Profiles (and Davies-Bouldin's intra-cluster distances) in one pass over all rows.
    worker = _final_worker(pre, km, remap, feats, value_columns, centers_x)
    final = base.select(HAS_ORDER, *feats, *value_columns).mapInPandas(worker, FINAL_SCHEMA)
    if n_clustered:
        assignments = base.select("customer_id", HAS_ORDER, *feats).mapInPandas(
            _assign_worker(pre, km, remap, feats, ids, unique), ASSIGNMENT_SCHEMA
        )
    else:  # only prospects: nothing to predict
        assignments = base.select(
            "customer_id",
            F.lit(PROSPECTS_ID).alias("segment_id"),
            F.lit(PROSPECTS_NAME).alias("segment_name"),
        )
    agg = _aggregate(final, ["seg"], with_counts=True).sort_values("seg")
    seg_ids = [*ids, PROSPECTS_ID]
    rows, dist_sums = [], np.zeros(k)
    for r in agg.itertuples(index=False):
        total = _fsum_parts(r.hi, r.lo)
        cnt = np.sum(np.vstack(list(r.cnt)), axis=0)
        means = np.divide(total, cnt, out=np.full(len(total), np.nan), where=cnt > 0)
        if r.seg < k:
            dist_sums[r.seg] = total[-1]
        rows.append((seg_ids[r.seg], int(r.n), *means[: len(value_columns)]))
    prof = pd.DataFrame(rows, columns=["segment_id", "customers", *PROFILE_MEANS])
    prof["customers"] = prof["customers"].astype(np.int64)
    prof = prof.sort_values("segment_id", kind="mergesort").reset_index(drop=True)
    if k > 1:
        sizes_canonical = np.zeros(k, dtype=np.int64)
        sizes_canonical[remap] = sizes
        db = _davies_bouldin(sizes_canonical, centers_x, dist_sums)
        meta["davies_bouldin"] = round(db, ROUND)

    prof["share"] = prof["customers"] / n_customers
    prof, centroids = finish_profiles(prof, names, incentive, centroid_rows, meta)
    return SparkSegmentation(assignments, prof, centroids, meta)
