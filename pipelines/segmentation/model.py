"""The model: preprocessing pipeline, silhouettes, k scan under the min-share guard,
canonical cluster order."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipelines.segmentation.config import ROUND

# Counts, money and days: log1p before scaling.
LOG_FEATURES = frozenset(
    {
        "orders_count",
        "net_revenue",
        "avg_order_value",
        "days_since_last_order",
        "tenure_days",
        "purchase_days_per_year",
        "referrals_sent",
        "referrals_converted",
        "reviews_posted",
        "social_shares",
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "median_gap_days",
    }
)
# NULL fill values inside the pipeline: survey columns neutral, counts and rates 0, else median.
NEUTRAL_FILL = {"nps_avg": 7.5, "nps_latest": 7.5, "csat_avg": 3.0}
ZERO_FILL = frozenset(
    {
        "referrals_sent",
        "referrals_converted",
        "reviews_posted",
        "social_shares",
        "refund_rate",
        "discount_share",
    }
)


def _log1p_nonneg(x):
    return np.log1p(np.clip(x, 0, None))


def build_preprocessor(features: tuple[str, ...]) -> Pipeline:
    """Impute -> log1p (skewed columns) per feature, then StandardScaler; output in `features`
    order."""
    parts = []
    # keep_empty_features: an export without surveys leaves nps/csat all-NULL; the column
    # must stay (filled) or the model loses a feature.
    for f in features:
        if f in NEUTRAL_FILL:
            imp = SimpleImputer(
                strategy="constant", fill_value=NEUTRAL_FILL[f], keep_empty_features=True
            )
        elif f in ZERO_FILL:
            imp = SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)
        else:
            imp = SimpleImputer(strategy="median", keep_empty_features=True)
        steps = [("impute", imp)]
        if f in LOG_FEATURES:
            steps.append(
                (
                    "log1p",
                    FunctionTransformer(
                        _log1p_nonneg, inverse_func=np.expm1, feature_names_out="one-to-one"
                    ),
                )
            )
        parts.append((f, Pipeline(steps), [f]))
    columns = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("columns", columns), ("scale", StandardScaler())])


def to_original(pre: Pipeline, scaled: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    out = pre.named_steps["scale"].inverse_transform(np.atleast_2d(scaled))
    for j, f in enumerate(features):
        if f in LOG_FEATURES:
            out[:, j] = np.expm1(out[:, j])
    return out


def transform(
    pre: Pipeline, df: pd.DataFrame, batch: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """`pre.transform` of the frame's `rows` (default: all), a batch at a time."""
    rows = np.arange(len(df)) if rows is None else rows
    out = np.empty((len(rows), len(pre.named_steps["scale"].mean_)))
    for start in range(0, len(rows), batch):
        out[start : start + batch] = pre.transform(df.iloc[rows[start : start + batch]])
    return out


def silhouettes(
    X: np.ndarray, label_sets: list[np.ndarray], chunk: int = 256, threads: int | None = None
) -> list[float]:
    """Mean silhouette of several labelings of the same points, computing the pairwise
    distances once (sklearn's silhouette_score recomputes them for every k). Singleton
    clusters score 0, as in sklearn.

    Blocks of rows go to `threads` threads (default: the cores, at most 4; numpy releases
    the GIL) and their sums are added in block order, so the result does not depend on
    the threads."""
    n = len(X)
    onehots, offsets = [], [0]
    for labels in label_sets:
        k = int(labels.max()) + 1
        onehots.append(np.eye(k)[labels])
        offsets.append(offsets[-1] + k)
    H = np.hstack(onehots)  # n x sum(k)
    counts = H.sum(axis=0)
    sq = np.einsum("ij,ij->i", X, X)

    def block_sums(start: int) -> np.ndarray:
        stop = min(start + chunk, n)
        rows = np.arange(stop - start)
        # |x|^2 + |y|^2 - 2 x.y, in place (the same operations, so the same bits)
        twice = X[start:stop] @ X.T
        twice *= 2.0
        D = np.add(sq[start:stop, None], sq[None, :])
        D -= twice
        del twice
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
        D[rows, np.arange(start, stop)] = 0.0
        S = D @ H  # sums of distances from each row to each cluster, for every labeling
        sums_by_labeling = np.empty(len(label_sets))
        for j, labels in enumerate(label_sets):
            sums = S[:, offsets[j] : offsets[j + 1]]
            own = labels[start:stop]
            n_own = counts[offsets[j] + own]
            a = sums[rows, own] / np.maximum(n_own - 1, 1)
            cnt = counts[offsets[j] : offsets[j + 1]]
            means = np.divide(sums, cnt, out=np.full_like(sums, np.inf), where=cnt > 0)
            means[rows, own] = np.inf
            b = means.min(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                s = np.nan_to_num((b - a) / np.maximum(a, b))
            sums_by_labeling[j] = np.where(n_own > 1, s, 0.0).sum()
        return sums_by_labeling

    workers = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        blocks = list(pool.map(block_sums, range(0, n, chunk)))
    totals = np.zeros(len(label_sets))
    for block in blocks:
        totals += block
    return [float(t / n) for t in totals]


def distinct_rows(x_fit) -> int:
    """Distinct rows among the first 50,000 of the fit sample (k cannot exceed them)."""
    return len(np.unique(x_fit[: min(len(x_fit), 50_000)].round(9), axis=0))


def fit_candidates(x_fit, n_sil: int, config) -> list[KMeans]:
    """One KMeans per candidate k, fitted on the fit sample (k stops at the distinct rows
    and at the silhouette sample's size - 1)."""
    n_distinct = distinct_rows(x_fit)
    models = []
    for k in range(config.k_min, config.k_max + 1):
        if k > min(n_distinct, n_sil - 1):
            break
        models.append(
            KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed).fit(x_fit)
        )
    return models


def rank_k(models, sils, counts, n: int, config) -> tuple[int | None, list[dict]]:
    """Index of the chosen model and the k scan, from each model's silhouette and label
    counts over all n rows."""
    scan, best = [], None
    for i, (km, sil) in enumerate(zip(models, sils, strict=True)):
        k = km.n_clusters
        min_share = float(counts[i].min() / n)
        row = {
            "k": k,
            "silhouette": round(sil, ROUND),
            "min_share": round(min_share, ROUND),
            "accepted": min_share >= config.min_share,
        }
        scan.append(row)
        # Rank: guard satisfied, then silhouette (rounded, so ties are stable), then smaller k;
        # if no k satisfies the guard, the k with the largest smallest cluster.
        key = (row["accepted"], row["silhouette"] if row["accepted"] else row["min_share"])
        if best is None or key > best[0]:
            best = (key, i)
    return (best[1] if best else None), scan


def canonical_order(km: KMeans, labels: np.ndarray) -> np.ndarray:
    """Old label -> canonical label: by size descending, then centroid values."""
    return order_by_size(km.cluster_centers_, np.bincount(labels, minlength=km.n_clusters))


def order_by_size(centers: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """`canonical_order` from the label counts (a caller that only has the counts)."""
    keys = [(-int(sizes[i]), *np.round(centers[i], ROUND)) for i in range(len(sizes))]
    order = sorted(range(len(sizes)), key=lambda i: keys[i])
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap
