"""How a night picks its model: a warm start from the previous run, or the full k scan.

The policy is shared by `segment_customers` (pandas) and `segment_on_spark`: they differ
only in how a list of fitted KMeans is evaluated over the customers (`Evaluate`: each
model's silhouette on the silhouette sample and its label counts over every clustered
customer), so both engines reach the same decision on the same rows.

Warm start. When the previous run (the latest as-of date before tonight's with
centroids) has a record in `history.segment_runs` (`PreviousRun`), clustered on the same
feature set, and its k is within [k_min, k_max], tonight fits ONE KMeans with that k,
`init` = the previous centroids projected into tonight's standardised space (tonight's
fitted preprocessor, as `match_ids` projects them), `n_init=1`, on tonight's fit sample.
It is kept unless
- its smallest cluster is under `min_share` (the guard), or
- its silhouette is lower than the last full scan's chosen silhouette by more than
  `rescan_silhouette_drop`, or
- the last full scan is `rescan_days` days or more before tonight (0: every night scans).
Otherwise, and on the first night or when the previous run has no record (a store of the
release before warm starts: every run of it scanned, but its silhouette was not kept, so
the first night after the upgrade scans), the full k scan of `model.rank_k` runs.

Every run records (`run_record`) how its k was chosen and the date and silhouette of the
last full scan, carried forward by warm starts. Only runs before tonight are read, so a
re-run of a night takes the same decision and writes the same tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from pipelines.segmentation.config import PROSPECTS_ID, ROUND, SegmentationConfig
from pipelines.segmentation.model import distinct_rows, fit_candidates, rank_k

K_SCAN = "k_scan"
WARM_START = "warm_start"

# Each model's (silhouette, label counts over all clustered rows, engine payload).
Evaluate = Callable[[list[KMeans]], list[tuple[float, np.ndarray, Any]]]


@dataclass(frozen=True)
class PreviousRun:
    """The previous run's record (a row of history.segment_runs)."""

    as_of_date: dt.date
    method: str
    k: int
    last_scan_date: dt.date
    last_scan_silhouette: float | None


@dataclass
class Choice:
    """The model of the night: `model` (None: no k could be fitted), the engine payload of
    its evaluation, the k scan (empty on a warm start) and the warm start's record."""

    model: KMeans | None
    payload: Any
    k_scan: list[dict]
    method: str
    warm_start: dict | None


def previous_scaled(previous_centroids: pd.DataFrame | None, pre, features) -> np.ndarray | None:
    """The previous run's clustered centroids in tonight's standardised space, by
    segment_id; None when there are none or they were clustered on another feature set."""
    if previous_centroids is None or not len(previous_centroids):
        return None
    prev = previous_centroids.pivot_table(
        index="segment_id", columns="feature", values="value", aggfunc="first"
    )
    prev = prev[prev.index != PROSPECTS_ID].sort_index()
    if set(prev.columns) != set(features) or not len(prev) or prev.isna().any().any():
        return None
    return pre.transform(prev[list(features)].astype("float64"))


def warm_init(
    previous_centroids: pd.DataFrame | None,
    previous_run: PreviousRun | None,
    as_of: dt.date | None,
    pre,
    x_fit: np.ndarray,
    n_sil: int,
    config: SegmentationConfig,
) -> tuple[np.ndarray | None, dict | None]:
    """The warm start's `init` (None: scan) and why not, before any fit."""
    if previous_run is None or as_of is None:
        return None, None  # first night, or a run of the release before warm starts
    info = {
        "from": previous_run.as_of_date.isoformat(),
        "last_scan_date": previous_run.last_scan_date.isoformat(),
        "last_scan_silhouette": previous_run.last_scan_silhouette,
    }
    init = previous_scaled(previous_centroids, pre, config.features)
    age = (as_of - previous_run.last_scan_date).days
    reason = None
    if init is None:
        reason = "previous centroids on another feature set"
    elif not config.k_min <= len(init) <= config.k_max:
        reason = f"previous k={len(init)} outside [{config.k_min}, {config.k_max}]"
    elif age >= config.rescan_days:
        reason = f"last k scan {age} days ago (rescan_days={config.rescan_days})"
    elif previous_run.last_scan_silhouette is None:
        reason = "no silhouette of the last k scan"
    elif len(init) > min(distinct_rows(x_fit), n_sil - 1):
        reason = f"previous k={len(init)} above the distinct customers"
    if reason is not None:
        return None, {**info, "k": None, "accepted": False, "reason": reason}
    return init, info


def choose_model(
    x_fit: np.ndarray,
    n: int,
    n_sil: int,
    evaluate: Evaluate,
    init: np.ndarray | None,
    warm: dict | None,
    previous_run: PreviousRun | None,
    config: SegmentationConfig,
) -> Choice:
    """The warm start when `init` is given and it passes, else the full k scan (`n`:
    clustered customers, `n_sil`: the silhouette sample's size)."""
    if init is not None:
        km = KMeans(n_clusters=len(init), init=init, n_init=1, random_state=config.seed).fit(x_fit)
        ((sil, counts, payload),) = evaluate([km])
        sil, min_share = round(sil, ROUND), round(float(counts.min() / n), ROUND)
        floor = round(previous_run.last_scan_silhouette - config.rescan_silhouette_drop, ROUND)
        reason = None
        if not min_share >= config.min_share:
            reason = f"min share {min_share} under {config.min_share}"
        elif sil < floor:
            reason = (
                f"silhouette {sil} under the last k scan's "
                f"{previous_run.last_scan_silhouette} - {config.rescan_silhouette_drop}"
            )
        warm = {
            **warm,
            "k": km.n_clusters,
            "silhouette": sil,
            "min_share": min_share,
            "accepted": reason is None,
            "reason": reason,
        }
        if reason is None:
            return Choice(km, payload, [], WARM_START, warm)
    models = fit_candidates(x_fit, n_sil, config)
    evaluated = evaluate(models) if models else []
    best, scan = rank_k(models, [e[0] for e in evaluated], [e[1] for e in evaluated], n, config)
    if best is None:
        return Choice(None, None, scan, K_SCAN, warm)
    return Choice(models[best], evaluated[best][2], scan, K_SCAN, warm)


def chosen_row(choice: Choice, k: int) -> dict | None:
    """The chosen model's row (k, silhouette, min_share, accepted): the accepted warm
    start's, or the k scan's row of k (None: the one-segment fallback)."""
    if choice.method == WARM_START:
        return choice.warm_start
    return next((r for r in choice.k_scan if r["k"] == k), None)


def record_choice(meta: dict, choice: Choice, previous_run: PreviousRun | None, as_of) -> None:
    """How k was chosen, in the run's metadata: `k_choice`, `warm_start` (the warm
    candidate and its verdict, None when none was tried) and `last_k_scan` (date and
    silhouette, carried forward by a warm start). Call after meta["silhouette"] is set."""
    meta["k_choice"] = choice.method
    meta["warm_start"] = choice.warm_start
    if choice.method == WARM_START:
        meta["last_k_scan"] = {
            "as_of_date": previous_run.last_scan_date.isoformat(),
            "silhouette": previous_run.last_scan_silhouette,
        }
    else:
        meta["last_k_scan"] = {
            "as_of_date": as_of.isoformat() if as_of is not None else None,
            "silhouette": meta["silhouette"],
        }


def describe(meta: dict) -> str:
    """One line for the operator: which path chose tonight's k."""
    if meta.get("k_choice") == WARM_START:
        w = meta["warm_start"]
        return (
            f"warm start from {w['from']}: k={meta['k']} silhouette={meta['silhouette']} "
            f"min_share={w['min_share']} (last k scan {meta['last_k_scan']['as_of_date']}, "
            f"silhouette {meta['last_k_scan']['silhouette']})"
        )
    if meta.get("k_choice") == K_SCAN:
        why = ""
        if meta.get("warm_start"):
            why = f" (no warm start from {meta['warm_start']['from']}: "
            why += f"{meta['warm_start']['reason']})"
        return f"k scan: k={meta['k']} silhouette={meta['silhouette']}{why}"
    return f"no clustering: k={meta.get('k')}"


def run_record(meta: dict, as_of: dt.date) -> pd.DataFrame:
    """Tonight's row of history.segment_runs (none for a run without clustered
    customers: it has no model, and the next night looks past it)."""
    columns = [
        "method",
        "k",
        "silhouette",
        "warm_from",
        "last_scan_date",
        "last_scan_silhouette",
    ]
    if not meta.get("k_choice"):
        return pd.DataFrame({c: [] for c in columns}).astype(
            {"method": object, "k": "int64", "warm_from": object, "last_scan_date": object}
        )
    warm = meta["warm_start"] if meta["k_choice"] == WARM_START else None
    return pd.DataFrame(
        {
            "method": [meta["k_choice"]],
            "k": [int(meta["k"])],
            "silhouette": [meta["silhouette"]],
            "warm_from": [dt.date.fromisoformat(warm["from"]) if warm else None],
            "last_scan_date": [dt.date.fromisoformat(meta["last_k_scan"]["as_of_date"])],
            "last_scan_silhouette": [meta["last_k_scan"]["silhouette"]],
        }
    ).astype({"silhouette": "float64", "last_scan_silhouette": "float64"})


def read_previous_run(rows: Sequence[tuple] | None) -> PreviousRun | None:
    """A history.segment_runs row (as_of_date, method, k, last_scan_date,
    last_scan_silhouette) as a PreviousRun."""
    if not rows:
        return None
    as_of, method, k, scan_date, scan_sil = rows[0]
    return PreviousRun(as_of, method, int(k), scan_date, scan_sil)
