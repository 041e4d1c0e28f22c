"""`segment_customers`: one snapshot of customer_features -> SegmentationResult (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import davies_bouldin_score
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
    canonical_order,
    silhouettes,
    to_original,
    transform,
)
from pipelines.segmentation.naming import INCENTIVES, archetype_of, persona_for, unique_names
from pipelines.segmentation.profiles import MEAN_SOURCES, PROFILE_COLUMNS, build_profiles
from pipelines.segmentation.warm import (
    PreviousRun,
    choose_model,
    chosen_row,
    record_choice,
    warm_init,
)


@dataclass
class SegmentationResult:
    assignments: pd.DataFrame  # customer_id, segment_id, segment_name
    profiles: pd.DataFrame  # PROFILE_COLUMNS
    centroids: pd.DataFrame  # segment_id, segment_name, feature, value (original units)
    metadata: dict = field(default_factory=dict)


def _prepare(features: pd.DataFrame, config: SegmentationConfig) -> pd.DataFrame:
    missing = [
        c for c in ("customer_id", "orders_count", *config.features) if c not in features.columns
    ]
    if missing:
        raise ValueError(f"customer_features lacks columns {missing}")
    # The warehouse's read (text ids in order, DOUBLE features) is used as it is: a copy
    # costs ~0.4 GB per million customers, and the caller still holds the frame.
    df = features
    if not pd.api.types.is_string_dtype(df["customer_id"]):
        df = df.assign(customer_id=df["customer_id"].astype(str))
    if not df["customer_id"].is_monotonic_increasing:
        df = df.sort_values("customer_id", kind="mergesort")
    if not df.index.equals(pd.RangeIndex(len(df))):
        df = df.reset_index(drop=True)
    if df["customer_id"].duplicated().any():
        raise ValueError("customer_id is not unique in customer_features")
    decimals = [
        c
        for c in sorted(set(config.features) | MEAN_SOURCES)
        if c in df.columns and df[c].dtype != np.float64  # DECIMAL: Decimal objects
    ]
    if decimals and df is features:
        df = df.copy()
    for c in decimals:
        df[c] = pd.to_numeric(df[c].astype(object), errors="coerce").astype("float64")
    return df


def initial_metadata(n_customers: int, n_clustered: int, config: SegmentationConfig) -> dict:
    """A run's metadata before any clustering (what a run of prospects only reports)."""
    return {
        "n_customers": n_customers,
        "n_prospects": n_customers - n_clustered,
        "n_clustered": n_clustered,
        "features": list(config.features),
        "seed": config.seed,
        "k": 0,
        "silhouette": None,
        "davies_bouldin": None,
        "k_scan": [],
        "fit_on_sample": False,
        "matching": {},
        "k_choice": None,
        "warm_start": None,
        "last_k_scan": None,
    }


def prospect_labels() -> tuple[dict[str, str], dict[str, str]]:
    """Segment id -> name and -> incentive, holding the never-clustered prospects."""
    return {PROSPECTS_ID: PROSPECTS_NAME}, {PROSPECTS_ID: INCENTIVES["prospect"]}


def name_segments(
    centers: np.ndarray,
    original: np.ndarray,
    ids: list[str],
    feats: tuple[str, ...] | list[str],
    names: dict[str, str],
    incentive: dict[str, str],
) -> tuple[list[str], list[tuple]]:
    """Each clustered segment's unique name and incentive (added to `names` and
    `incentive`) and its centroid rows in original units; returns (names, rows) by label."""
    k = len(centers)
    arche = [
        archetype_of(
            dict(zip(feats, centers[i], strict=True)),
            dict(zip(feats, original[i], strict=True)),
        )
        for i in range(k)
    ]
    unique = unique_names([a[0] for a in arche], centers, feats)
    rows: list[tuple] = []
    for i in range(k):
        names[ids[i]] = unique[i]
        incentive[ids[i]] = INCENTIVES[arche[i][1]]
        rows += [
            (ids[i], unique[i], f, round(float(v), ROUND))
            for f, v in zip(feats, original[i], strict=True)
        ]
    return unique, rows


def finish_profiles(
    prof: pd.DataFrame,
    names: dict[str, str],
    incentive: dict[str, str],
    centroid_rows: list[tuple],
    meta: dict,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Profiles (segment_id, customers, share, means) named, with persona and incentive,
    rounded; the centroids as a frame; the sizes and names in `meta`."""
    prof["segment_name"] = prof["segment_id"].map(names)
    prof["recommended_incentive"] = prof["segment_id"].map(incentive)
    prof["persona"] = [persona_for(p) for p in prof.to_dict("records")]
    prof = prof[list(PROFILE_COLUMNS)]
    num = prof.select_dtypes("float").columns
    prof[num] = prof[num].round(ROUND)
    centroids = pd.DataFrame(
        centroid_rows, columns=["segment_id", "segment_name", "feature", "value"]
    )
    centroids = centroids.sort_values(["segment_id", "feature"], kind="mergesort")
    meta["sizes"] = {str(r.segment_id): int(r.customers) for r in prof.itertuples()}
    meta["names"] = dict(sorted(names.items()))
    return prof.reset_index(drop=True), centroids.reset_index(drop=True)


def segment_customers(
    features: pd.DataFrame,
    previous_centroids: pd.DataFrame | None,
    used_ids: set[str],
    config: SegmentationConfig | None = None,
    previous_run: PreviousRun | None = None,
    as_of: dt.date | None = None,
) -> SegmentationResult:
    """Segment one snapshot of customer_features. Deterministic for identical input.

    With `previous_run` (the record of the run that wrote `previous_centroids`) and
    tonight's `as_of`, the previous model may be warm-started (pipelines/segmentation/
    warm.py); without, k is chosen by the full k scan."""
    config = config or SegmentationConfig()
    feats = config.features
    df = _prepare(features, config)
    has_order = df["orders_count"].fillna(0).to_numpy() > 0
    if "frequency" in df.columns:
        has_order &= df["frequency"].notna().to_numpy()
    clustered = np.flatnonzero(has_order)  # row numbers, not a copy of their rows
    seg = pd.Series(PROSPECTS_ID, index=df.index, dtype=object)
    names, incentive = prospect_labels()
    meta = initial_metadata(len(df), len(clustered), config)
    centroid_rows = []
    if len(clustered):
        rng = np.random.default_rng(config.seed)
        n = len(clustered)
        with threadpool_limits(limits=config.n_threads):
            fit_idx = (
                np.sort(rng.choice(n, config.fit_sample_size, replace=False))
                if n > config.fit_sample_size
                else np.arange(n)
            )
            meta["fit_on_sample"] = bool(n > config.fit_sample_size)
            pre = build_preprocessor(feats).fit(df.iloc[clustered[fit_idx]])
            X = transform(pre, df, config.batch_size, clustered)
            sil_idx = np.sort(rng.choice(n, min(n, config.sample_size), replace=False))
            x_fit = X[fit_idx]

            def evaluate(models):
                label_sets = [km.predict(X) for km in models]
                sils = silhouettes(X[sil_idx], [lab[sil_idx] for lab in label_sets])
                return [
                    (sil, np.bincount(lab, minlength=km.n_clusters), lab)
                    for km, sil, lab in zip(models, sils, label_sets, strict=True)
                ]

            init, warm = warm_init(
                previous_centroids, previous_run, as_of, pre, x_fit, len(sil_idx), config
            )
            choice = choose_model(
                x_fit, n, len(sil_idx), evaluate, init, warm, previous_run, config
            )
            km, labels, meta["k_scan"] = choice.model, choice.payload, choice.k_scan
            if km is None:  # fewer distinct customers than k_min: one segment
                km = KMeans(n_clusters=1, n_init=1, random_state=config.seed).fit(X[fit_idx])
                labels = km.predict(X)
            remap = canonical_order(km, labels)
            labels = remap[labels]
            chosen = chosen_row(choice, km.n_clusters)
            meta["guard_satisfied"] = bool(chosen and chosen["accepted"])
            centers = np.empty_like(km.cluster_centers_)
            centers[remap] = km.cluster_centers_
            k = len(centers)
            meta["k"] = k
            if k > 1:
                meta["silhouette"] = chosen["silhouette"]
                meta["davies_bouldin"] = round(float(davies_bouldin_score(X, labels)), ROUND)
            record_choice(meta, choice, previous_run, as_of)
            ids, meta["matching"] = match_ids(centers, previous_centroids, pre, config, used_ids)
            original = to_original(pre, centers, feats)
        _, centroid_rows = name_segments(centers, original, ids, feats, names, incentive)
        seg.iloc[clustered] = np.asarray(ids, dtype=object)[labels]
    assignments = pd.DataFrame(
        {
            "customer_id": df["customer_id"].astype(object),
            "segment_id": seg.to_numpy(),
            "segment_name": seg.map(names),
        }
    )
    prof, centroids = finish_profiles(
        build_profiles(df, seg), names, incentive, centroid_rows, meta
    )
    return SegmentationResult(assignments, prof, centroids, meta)
