"""Random streams and the vectorised draws built on them.

Deterministic: every random draw comes from `numpy.random.Generator(PCG64([seed, stream,
...]))` with a fixed stream number per part (customers, orders, referrals, surveys, events,
marketing months, program-cost months, next-day changes), no wall clock.
"""

from __future__ import annotations

import numpy as np

# Random streams (second element of the PCG64 seed), one per part of the data.
S_CUSTOMERS, S_ORDERS, S_REFERRALS, S_SURVEYS, S_EVENTS = 1, 2, 3, 4, 5
S_MARKETING, S_PROGRAM, S_DAY = 6, 7, 100


def make_rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, *stream]))


def trunc_exp(rng: np.random.Generator, scale: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Exponential(scale) truncated to [0, width] (inverse CDF, one draw per row)."""
    u = rng.random(len(scale))
    width = np.maximum(width, 0.0)
    return -scale * np.log1p(-u * -np.expm1(-width / scale))


def pick_index(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    """n draws from a categorical distribution (vectorised)."""
    cdf = np.cumsum(probs)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(probs) - 1)


def pick_rows(rng: np.random.Generator, cdf_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row, each row with its own CDF (2-D array)."""
    u = rng.random(len(cdf_rows))
    return np.minimum((u[:, None] >= cdf_rows).sum(axis=1), cdf_rows.shape[1] - 1)


def weighted_sample(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """k distinct indices, chance proportional to weight (Efraimidis-Spirakis), sorted."""
    ok = np.flatnonzero(weights > 0)
    k = min(k, len(ok))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.log(rng.random(len(ok))) / weights[ok]
    return np.sort(ok[np.argpartition(-keys, k - 1)[:k]])
