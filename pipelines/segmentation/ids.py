"""Stable segment ids: Hungarian matching to the previous centroids, fresh S<nn> ids."""

from __future__ import annotations

import re

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipelines.segmentation.config import PROSPECTS_ID, ROUND


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
            index="segment_id", columns="feature", values="value", aggfunc="first"
        )
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
