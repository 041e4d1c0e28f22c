"""Customer segmentation: marts.customer_features -> segments with stable ids, names, profiles.

`segment_customers` is pure (DataFrames in, DataFrames out); `run_segmentation` does the
DuckDB I/O. Customers without a completed order form the fixed segment `prospects`; the
others are clustered with KMeans on standardised features (log1p on the skewed ones), k
chosen by silhouette on a seeded sample under a minimum-share guard. Centroids are kept in
ORIGINAL units (the exact inverse of the fitted transform), so the next run can project the
previous centroids with its own fitted transformer and match them (Hungarian assignment).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import davies_bouldin_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from pipelines.warehouse_tables import create_python_owned_tables

PROSPECTS_ID = "prospects"
PROSPECTS_NAME = "Prospects"
ROUND = 6

DEFAULT_FEATURES: tuple[str, ...] = (
    "orders_count", "net_revenue", "avg_order_value", "days_since_last_order", "tenure_days",
    "purchase_days_per_year", "nps_avg", "csat_avg", "referrals_sent", "reviews_posted",
    "social_shares", "refund_rate", "discount_share",
)
# Counts, money and days: log1p before scaling.
LOG_FEATURES = frozenset({
    "orders_count", "net_revenue", "avg_order_value", "days_since_last_order", "tenure_days",
    "purchase_days_per_year", "referrals_sent", "referrals_converted", "reviews_posted",
    "social_shares", "frequency", "recency", "T", "monetary_value", "median_gap_days",
})
# NULL fill values inside the pipeline: survey columns neutral, counts and rates 0, else median.
NEUTRAL_FILL = {"nps_avg": 7.5, "nps_latest": 7.5, "csat_avg": 3.0}
ZERO_FILL = frozenset({
    "referrals_sent", "referrals_converted", "reviews_posted", "social_shares", "refund_rate",
    "discount_share",
})
# Extra marts.segment_profiles columns: output column -> (source column, aggregation).
PROFILE_MEANS: dict[str, tuple[str, str]] = {
    "avg_orders_count": ("orders_count", "mean"),
    "avg_net_revenue": ("net_revenue", "mean"),
    "avg_order_value": ("avg_order_value", "mean"),
    "avg_days_since_last_order": ("days_since_last_order", "mean"),
    "avg_tenure_days": ("tenure_days", "mean"),
    "avg_purchase_days_per_year": ("purchase_days_per_year", "mean"),
    "avg_nps": ("nps_avg", "mean"),
    "avg_csat": ("csat_avg", "mean"),
    "avg_referrals_sent": ("referrals_sent", "mean"),
    "avg_referrals_converted": ("referrals_converted", "mean"),
    "avg_reviews_posted": ("reviews_posted", "mean"),
    "avg_social_shares": ("social_shares", "mean"),
    "avg_refund_rate": ("refund_rate", "mean"),
    "avg_discount_share": ("discount_share", "mean"),
    "promoter_share": ("nps_class", "promoter"),
    "detractor_share": ("nps_class", "detractor"),
    "active_advocate_share": ("advocate_type", "active"),
    "high_churn_risk_share": ("churn_risk", "high"),
}
MEAN_SOURCES = frozenset(src for src, agg in PROFILE_MEANS.values() if agg == "mean")
CATEGORICAL_SOURCES = ("nps_class", "advocate_type", "churn_risk")
PROFILE_COLUMNS = (
    "segment_id", "segment_name", "customers", "share", "persona", "recommended_incentive",
    *PROFILE_MEANS,
)

INCENTIVES = {
    "detractor": "Fix the experience first (service recovery, follow up on complaints); "
    "do not solicit referrals",
    "at_risk": "Win-back offer (personal discount on the next order) before any referral ask",
    "new": "Double-sided welcome credit: the customer and the invited friend both get credit",
    "advocate": "Tiered referral rewards and VIP status",
    "premium": "Upgrade or exclusive early access as the referral reward, not a discount",
    "loyal": "Double-sided referral reward with a personal ask after a purchase; "
    "path to the VIP tier",
    "price": "Discount-based double-sided referral reward (percentage off for both sides)",
    "occasional": "Small double-sided discount code to share, sent after the next purchase",
    "prospect": "Double-sided welcome credit on the first order",
}
FEATURE_LABELS = {
    "orders_count": "order count", "net_revenue": "revenue", "avg_order_value": "order value",
    "days_since_last_order": "days since last order", "tenure_days": "tenure",
    "purchase_days_per_year": "purchase rate", "nps_avg": "NPS", "csat_avg": "CSAT",
    "referrals_sent": "referrals", "reviews_posted": "reviews", "social_shares": "shares",
    "refund_rate": "refunds", "discount_share": "discount use",
}


@dataclass(frozen=True)
class SegmentationConfig:
    k_min: int = 3
    k_max: int = 8
    min_share: float = 0.03  # of the clustered customers (prospects excluded)
    seed: int = 42
    n_init: int = 4
    sample_size: int = 20_000  # silhouette sample
    fit_sample_size: int = 200_000  # above this many clustered customers, fit on a sample
    batch_size: int = 250_000  # transform/predict batch
    max_match_distance: float | None = 2.5  # Euclidean, current standardised space
    n_threads: int = 2  # <= 2 keeps KMeans' OpenMP reduction order-independent
    features: tuple[str, ...] = DEFAULT_FEATURES

    @classmethod
    def from_env(cls) -> SegmentationConfig:
        """SEGMENT_K_MIN, SEGMENT_K_MAX, SEGMENT_MIN_SHARE, SEGMENT_SEED (README); defaults."""
        d = cls()
        return cls(k_min=int(os.getenv("SEGMENT_K_MIN", d.k_min)),
                   k_max=int(os.getenv("SEGMENT_K_MAX", d.k_max)),
                   min_share=float(os.getenv("SEGMENT_MIN_SHARE", d.min_share)),
                   seed=int(os.getenv("SEGMENT_SEED", d.seed)))

    def __post_init__(self):
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"need 2 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if not 0 <= self.min_share < 1:
            raise ValueError(f"min_share must be in [0, 1), got {self.min_share}")


@dataclass
class SegmentationResult:
    assignments: pd.DataFrame  # customer_id, segment_id, segment_name
    profiles: pd.DataFrame  # PROFILE_COLUMNS
    centroids: pd.DataFrame  # segment_id, segment_name, feature, value (original units)
    metadata: dict = field(default_factory=dict)


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
                strategy="constant", fill_value=NEUTRAL_FILL[f], keep_empty_features=True)
        elif f in ZERO_FILL:
            imp = SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)
        else:
            imp = SimpleImputer(strategy="median", keep_empty_features=True)
        steps = [("impute", imp)]
        if f in LOG_FEATURES:
            steps.append(("log1p", FunctionTransformer(
                _log1p_nonneg, inverse_func=np.expm1, feature_names_out="one-to-one")))
        parts.append((f, Pipeline(steps), [f]))
    columns = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("columns", columns), ("scale", StandardScaler())])


def _to_original(pre: Pipeline, scaled: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    out = pre.named_steps["scale"].inverse_transform(np.atleast_2d(scaled))
    for j, f in enumerate(features):
        if f in LOG_FEATURES:
            out[:, j] = np.expm1(out[:, j])
    return out


def _transform(pre: Pipeline, df: pd.DataFrame, batch: int) -> np.ndarray:
    out = np.empty((len(df), len(pre.named_steps["scale"].mean_)))
    for start in range(0, len(df), batch):
        out[start:start + batch] = pre.transform(df.iloc[start:start + batch])
    return out


def _prepare(features: pd.DataFrame, config: SegmentationConfig) -> pd.DataFrame:
    missing = [c for c in ("customer_id", "orders_count", *config.features)
               if c not in features.columns]
    if missing:
        raise ValueError(f"customer_features lacks columns {missing}")
    df = features.assign(customer_id=features["customer_id"].astype(str))
    df = df.sort_values("customer_id", kind="mergesort").reset_index(drop=True)
    if df["customer_id"].duplicated().any():
        raise ValueError("customer_id is not unique in customer_features")
    for c in sorted(set(config.features) | MEAN_SOURCES):
        if c in df.columns and df[c].dtype != np.float64:  # DECIMAL: Decimal objects
            df[c] = pd.to_numeric(df[c].astype(object), errors="coerce").astype("float64")
    return df


def silhouettes(X: np.ndarray, label_sets: list[np.ndarray], chunk: int = 256) -> list[float]:
    """Mean silhouette of several labelings of the same points, computing the pairwise
    distances once (sklearn's silhouette_score recomputes them for every k). Singleton
    clusters score 0, as in sklearn."""
    n = len(X)
    onehots, offsets = [], [0]
    for labels in label_sets:
        k = int(labels.max()) + 1
        onehots.append(np.eye(k)[labels])
        offsets.append(offsets[-1] + k)
    H = np.hstack(onehots)  # n x sum(k)
    counts = H.sum(axis=0)
    sq = np.einsum("ij,ij->i", X, X)
    totals = np.zeros(len(label_sets))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        D = sq[start:stop, None] + sq[None, :] - 2.0 * (X[start:stop] @ X.T)
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
        D[np.arange(stop - start), np.arange(start, stop)] = 0.0
        S = D @ H  # sums of distances from each row to each cluster, for every labeling
        for j, labels in enumerate(label_sets):
            sums = S[:, offsets[j]:offsets[j + 1]]
            own = labels[start:stop]
            rows = np.arange(stop - start)
            n_own = counts[offsets[j] + own]
            a = sums[rows, own] / np.maximum(n_own - 1, 1)
            cnt = counts[offsets[j]:offsets[j + 1]]
            means = np.divide(sums, cnt, out=np.full_like(sums, np.inf), where=cnt > 0)
            means[rows, own] = np.inf
            b = means.min(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                s = np.nan_to_num((b - a) / np.maximum(a, b))
            totals[j] += np.where(n_own > 1, s, 0.0).sum()
    return [float(t / n) for t in totals]


def _choose_k(X, x_fit, sil_idx, config) -> tuple[tuple, list[dict]]:
    n_distinct = len(np.unique(x_fit[: min(len(x_fit), 50_000)].round(9), axis=0))
    models, label_sets = [], []
    for k in range(config.k_min, config.k_max + 1):
        if k > min(n_distinct, len(sil_idx) - 1):
            break
        km = KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed).fit(x_fit)
        models.append(km)
        label_sets.append(km.predict(X))
    sils = silhouettes(X[sil_idx], [lab[sil_idx] for lab in label_sets]) if models else []
    scan, best = [], None
    for km, labels, sil in zip(models, label_sets, sils, strict=True):
        k = km.n_clusters
        min_share = float(np.bincount(labels, minlength=k).min() / len(X))
        row = {"k": k, "silhouette": round(sil, ROUND), "min_share": round(min_share, ROUND),
               "accepted": min_share >= config.min_share}
        scan.append(row)
        # Rank: guard satisfied, then silhouette (rounded, so ties are stable), then smaller k;
        # if no k satisfies the guard, the k with the largest smallest cluster.
        key = (row["accepted"], row["silhouette"] if row["accepted"] else row["min_share"])
        if best is None or key > best[0]:
            best = (key, km, labels)
    return (best[1:] if best else (None, None)), scan


def _canonical_order(km: KMeans, labels: np.ndarray) -> np.ndarray:
    """Old label -> canonical label: by size descending, then centroid values."""
    sizes = np.bincount(labels, minlength=km.n_clusters)
    keys = [(-int(sizes[i]), *np.round(km.cluster_centers_[i], ROUND)) for i in range(len(sizes))]
    order = sorted(range(len(sizes)), key=lambda i: keys[i])
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap


def _next_ids(used: set[str]):
    n = max([int(m.group(1)) for u in used if (m := re.fullmatch(r"S(\d+)", u))], default=0)
    while True:
        n += 1
        yield f"S{n:02d}"


def match_ids(new_scaled, previous_centroids, pre, config, used_ids) -> tuple[list[str], dict]:
    """Hungarian match of new (scaled) centroids to the previous run's (original units)."""
    feats = config.features
    info = {"matched": {}, "new_ids": [], "previous_ignored": False}
    ids: list[str | None] = [None] * len(new_scaled)
    if previous_centroids is not None and len(previous_centroids):
        prev = previous_centroids.pivot_table(
            index="segment_id", columns="feature", values="value", aggfunc="first")
        prev = prev[prev.index != PROSPECTS_ID].sort_index()
        if set(feats) <= set(prev.columns) and len(prev):
            prev_scaled = pre.transform(prev[list(feats)].astype("float64"))
            cost = np.linalg.norm(new_scaled[:, None, :] - prev_scaled[None, :, :], axis=2)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if config.max_match_distance is None or cost[r, c] <= config.max_match_distance:
                    ids[r] = str(prev.index[c])
                    info["matched"][ids[r]] = round(float(cost[r, c]), ROUND)
        else:
            info["previous_ignored"] = True  # feature set changed: no match possible
    fresh = _next_ids(set(used_ids) | {i for i in ids if i})
    for r in range(len(ids)):
        if ids[r] is None:
            ids[r] = next(fresh)
            info["new_ids"].append(ids[r])
    return ids, info


def _archetype(z: dict, o: dict) -> tuple[str, str]:
    """(name, incentive key) from a centroid: z = standardised, o = original units."""
    def zf(f):
        return z.get(f, 0.0)
    advocacy = np.mean([zf(f) for f in ("referrals_sent", "reviews_posted", "social_shares")])
    value = np.mean([zf("orders_count"), zf("net_revenue")])
    detractor = "nps_avg" in o and o["nps_avg"] < 7.0
    lapsed = zf("days_since_last_order") >= 0.75 and o.get("days_since_last_order", 999) >= 90
    if detractor and lapsed:
        return "Dormant detractors", "detractor"
    if detractor:
        return "Unhappy detractors", "detractor"
    if zf("tenure_days") <= -0.75 and value <= 0.25:
        return "New customers", "new"
    if lapsed:
        return ("At risk", "at_risk") if value >= 0 else ("Lapsed", "at_risk")
    if advocacy >= 0.5:
        return ("Champion advocates" if value >= 0.25 else "Active advocates"), "advocate"
    if zf("avg_order_value") >= 0.75:
        return ("Big spenders, quiet" if advocacy <= 0 else "Big spenders"), "premium"
    if value >= 0.5:
        return "Loyal regulars", "loyal"
    if zf("discount_share") >= 0.75:
        return "Bargain hunters", "price"
    return "Occasional buyers", "occasional"


def _unique_names(names: list[str], z: np.ndarray, features: tuple[str, ...]) -> list[str]:
    """Disambiguate equal names by the most distinguishing feature, then by a number."""
    out = list(names)
    for name in sorted(set(names)):
        idx = [i for i, n in enumerate(names) if n == name]
        if len(idx) < 2:
            continue
        dev = z[idx] - z[idx].mean(axis=0)
        for row, i in enumerate(idx):
            j = int(np.argmax(np.abs(dev[row]).round(ROUND)))
            label = FEATURE_LABELS.get(features[j], features[j])
            out[i] = f"{name} ({'high' if dev[row, j] > 0 else 'low'} {label})"
    seen: dict[str, int] = {}
    for i, n in enumerate(out):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            out[i] = f"{n} {seen[n]}"
    return out


def _fmt(x: float, spec: str) -> str:
    return "n/a" if x is None or pd.isna(x) else format(x, spec)


def _persona(p: dict) -> str:
    head = f"{p['customers']:,} customers ({p['share']:.1%})"
    if p["segment_id"] == PROSPECTS_ID:
        return (f"{head} who signed up {_fmt(p['avg_tenure_days'], ',.0f')} days ago on "
                "average and have not completed an order yet.")
    return (f"{head} with {_fmt(p['avg_orders_count'], ',.1f')} orders and "
            f"{_fmt(p['avg_net_revenue'], ',.0f')} net revenue on average "
            f"({_fmt(p['avg_order_value'], ',.0f')} per order), last order "
            f"{_fmt(p['avg_days_since_last_order'], ',.0f')} days ago, customers for "
            f"{_fmt(p['avg_tenure_days'], ',.0f')} days, NPS {_fmt(p['avg_nps'], '.1f')}, "
            f"{_fmt(p['avg_referrals_sent'], '.1f')} referrals sent in the last year.")


def _profiles(df: pd.DataFrame, seg: pd.Series) -> pd.DataFrame:
    cols = {}
    for out, (src, agg) in PROFILE_MEANS.items():
        if src not in df.columns:
            cols[out] = pd.Series(np.nan, index=df.index)
        elif agg == "mean":
            cols[out] = df[src]
        else:
            cols[out] = (df[src] == agg).astype("float64").where(df[src].notna())
    frame = pd.DataFrame(cols).assign(segment_id=seg.to_numpy())
    prof = frame.groupby("segment_id", sort=True).mean()
    prof.insert(0, "customers", frame.groupby("segment_id", sort=True).size())
    prof["share"] = prof["customers"] / len(df)
    return prof.reset_index()


def segment_customers(features: pd.DataFrame, previous_centroids: pd.DataFrame | None,
                      used_ids: set[str], config: SegmentationConfig | None = None
                      ) -> SegmentationResult:
    """Segment one snapshot of customer_features. Deterministic for identical input."""
    config = config or SegmentationConfig()
    feats = config.features
    df = _prepare(features, config)
    has_order = df["orders_count"].fillna(0).to_numpy() > 0
    if "frequency" in df.columns:
        has_order &= df["frequency"].notna().to_numpy()
    clustered = df[has_order]
    seg = pd.Series(PROSPECTS_ID, index=df.index, dtype=object)
    names = {PROSPECTS_ID: PROSPECTS_NAME}
    incentive = {PROSPECTS_ID: INCENTIVES["prospect"]}
    meta: dict = {"n_customers": len(df), "n_prospects": int((~has_order).sum()),
                  "n_clustered": len(clustered), "features": list(feats), "seed": config.seed,
                  "k": 0, "silhouette": None, "davies_bouldin": None, "k_scan": [],
                  "fit_on_sample": False, "matching": {}}
    centroid_rows = []
    if len(clustered):
        rng = np.random.default_rng(config.seed)
        n = len(clustered)
        with threadpool_limits(limits=config.n_threads):
            fit_idx = np.sort(rng.choice(n, config.fit_sample_size, replace=False)) \
                if n > config.fit_sample_size else np.arange(n)
            meta["fit_on_sample"] = bool(n > config.fit_sample_size)
            pre = build_preprocessor(feats).fit(clustered.iloc[fit_idx])
            X = _transform(pre, clustered, config.batch_size)
            sil_idx = np.sort(rng.choice(n, min(n, config.sample_size), replace=False))
            (km, labels), meta["k_scan"] = _choose_k(X, X[fit_idx], sil_idx, config)
            if km is None:  # fewer distinct customers than k_min: one segment
                km = KMeans(n_clusters=1, n_init=1, random_state=config.seed).fit(X[fit_idx])
                labels = km.predict(X)
            remap = _canonical_order(km, labels)
            labels = remap[labels]
            meta["guard_satisfied"] = any(r["accepted"] and r["k"] == km.n_clusters
                                          for r in meta["k_scan"])
            centers = np.empty_like(km.cluster_centers_)
            centers[remap] = km.cluster_centers_
            k = len(centers)
            meta["k"] = k
            if k > 1:
                meta["silhouette"] = next(r["silhouette"] for r in meta["k_scan"] if r["k"] == k)
                meta["davies_bouldin"] = round(float(davies_bouldin_score(X, labels)), ROUND)
            ids, meta["matching"] = match_ids(centers, previous_centroids, pre, config, used_ids)
            original = _to_original(pre, centers, feats)
        arche = [_archetype(dict(zip(feats, centers[i], strict=True)),
                            dict(zip(feats, original[i], strict=True))) for i in range(k)]
        unique = _unique_names([a[0] for a in arche], centers, feats)
        seg.iloc[np.flatnonzero(has_order)] = np.asarray(ids, dtype=object)[labels]
        for i in range(k):
            names[ids[i]] = unique[i]
            incentive[ids[i]] = INCENTIVES[arche[i][1]]
            centroid_rows += [(ids[i], unique[i], f, round(float(v), ROUND))
                              for f, v in zip(feats, original[i], strict=True)]
    assignments = pd.DataFrame({"customer_id": df["customer_id"].astype(object),
                                "segment_id": seg.to_numpy(), "segment_name": seg.map(names)})
    prof = _profiles(df, seg)
    prof["segment_name"] = prof["segment_id"].map(names)
    prof["recommended_incentive"] = prof["segment_id"].map(incentive)
    prof["persona"] = [_persona(p) for p in prof.to_dict("records")]
    prof = prof[list(PROFILE_COLUMNS)]
    num = prof.select_dtypes("float").columns
    prof[num] = prof[num].round(ROUND)
    centroids = pd.DataFrame(centroid_rows,
                             columns=["segment_id", "segment_name", "feature", "value"])
    centroids = centroids.sort_values(["segment_id", "feature"], kind="mergesort")
    meta["sizes"] = {str(r.segment_id): int(r.customers) for r in prof.itertuples()}
    meta["names"] = dict(sorted(names.items()))
    return SegmentationResult(assignments, prof.reset_index(drop=True),
                              centroids.reset_index(drop=True), meta)


def _write(con, table: str, df: pd.DataFrame, as_of, where_as_of: bool, order: str) -> None:
    con.register("_seg_df", df)
    try:
        if where_as_of:
            con.execute(f"DELETE FROM {table} WHERE as_of_date = ?", [as_of])
        else:
            con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} BY NAME SELECT *, ?::DATE AS as_of_date "
                    f"FROM _seg_df ORDER BY {order}", [as_of])
    finally:
        con.unregister("_seg_df")


def ensure_profile_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Add the mean-feature columns (PROFILE_MEANS) to marts.segment_profiles if missing."""
    for col in PROFILE_MEANS:
        con.execute(f"ALTER TABLE marts.segment_profiles ADD COLUMN IF NOT EXISTS {col} DOUBLE")


def run_segmentation(con: duckdb.DuckDBPyConnection,
                     config: SegmentationConfig | None = None) -> dict:
    """Read marts.customer_features, segment, write marts.* and history.* in one transaction."""
    config = config or SegmentationConfig()
    create_python_owned_tables(con)
    ensure_profile_columns(con)
    as_of = con.execute("SELECT max(export_date) FROM raw.exports").fetchone()[0]
    if as_of is None:
        raise ValueError("raw.exports is empty: no as-of date")
    available = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = 'customer_features'").fetchall()}
    numeric = ({"orders_count", "frequency", *config.features} | MEAN_SOURCES) & available
    select = ["customer_id"] + [f'CAST("{c}" AS DOUBLE) AS "{c}"' for c in sorted(numeric)]
    select += [f'"{c}"' for c in CATEGORICAL_SOURCES if c in available]
    features = con.execute(f"SELECT {', '.join(select)} FROM marts.customer_features "
                           "ORDER BY customer_id").df()
    previous = con.execute(
        "SELECT segment_id, segment_name, feature, value FROM history.segment_centroids "
        "WHERE as_of_date = (SELECT max(as_of_date) FROM history.segment_centroids "
        "WHERE as_of_date < ?) ORDER BY segment_id, feature", [as_of]).df()
    used = {r[0] for r in con.execute(
        "SELECT segment_id FROM history.segment_assignments WHERE as_of_date <> ? UNION "
        "SELECT segment_id FROM history.segment_centroids WHERE as_of_date <> ?",
        [as_of, as_of]).fetchall()}
    result = segment_customers(features, previous if len(previous) else None, used, config)
    con.execute("BEGIN TRANSACTION")
    try:
        _write(con, "marts.customer_segments", result.assignments, as_of, False, "customer_id")
        _write(con, "marts.segment_profiles", result.profiles, as_of, False, "segment_id")
        _write(con, "history.segment_assignments", result.assignments, as_of, True,
               "customer_id")
        _write(con, "history.segment_centroids", result.centroids, as_of, True,
               "segment_id, feature")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {"as_of_date": as_of.isoformat(), **result.metadata}
