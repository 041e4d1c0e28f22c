"""The population: customers (with their hidden behaviour group) and all their records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from pipelines.sample.dates import DAY, HISTORY_DAYS, _epoch
from pipelines.sample.draws import _S_CUSTOMERS, _pick, _rng
from pipelines.sample.engagement import _build_events, _build_surveys
from pipelines.sample.orders import _build_orders
from pipelines.sample.params import (
    _ACQ,
    _ACQ_P,
    _CHANNEL_CODE,
    _CITY_COUNT,
    _CITY_START,
    _COUNTRY_P,
    _FIRST_NAMES,
    _GENDER_P,
    _GENDERS,
    _LAST_NAMES,
    _P,
    BEHAVIOUR_GROUPS,
    GROUP_SHARES,
)
from pipelines.sample.referrals import _build_referrals


@dataclass
class _Population:
    """All records of the CRM as numpy columns; customers are indexed 0..n-1 (id = i+1)."""

    seed: int
    base_customers: int
    history_start: int  # epoch seconds
    customers: dict[str, np.ndarray] = field(default_factory=dict)
    orders: dict[str, np.ndarray] = field(default_factory=dict)
    referrals: dict[str, np.ndarray] = field(default_factory=dict)
    surveys: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, np.ndarray] = field(default_factory=dict)


def _group_counts(n: int) -> np.ndarray:
    """Customers per group: the shares of GROUP_SHARES, rounded by largest remainder."""
    shares = np.array([GROUP_SHARES[g] for g in BEHAVIOUR_GROUPS])
    raw = shares * n
    counts = np.floor(raw).astype(np.int64)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts


def _customer_attrs(
    rng: np.random.Generator, group: np.ndarray, signup_ts: np.ndarray, end_ts: int
) -> dict[str, np.ndarray]:
    n = len(group)
    country = _pick(rng, np.array(_COUNTRY_P), n).astype(np.int8)
    city = (_CITY_START[country] + np.floor(rng.random(n) * _CITY_COUNT[country])).astype(
        np.int16)
    birth = np.clip(np.round(rng.normal(1984, 12, n)), 1940, 2008).astype(np.int16)
    birth[rng.random(n) < 0.04] = -1
    gender = _pick(rng, np.array(_GENDER_P), n).astype(np.int8)
    gender[gender == len(_GENDERS)] = -1
    acq = np.array([_CHANNEL_CODE[c] for c in _ACQ], dtype=np.int8)[_pick(rng, _ACQ_P, n)]
    # updated_at: mostly soon after signup, sometimes much later (profile edits)
    span = (end_ts - 60 - signup_ts).astype(np.float64)
    updated = signup_ts + (span * rng.random(n) ** 4).astype(np.int64)
    return {
        "group": group.astype(np.int8),
        "signup_ts": signup_ts.astype(np.int64),
        "first_name": rng.integers(0, len(_FIRST_NAMES), n).astype(np.int16),
        "last_name": rng.integers(0, len(_LAST_NAMES), n).astype(np.int16),
        "phone": rng.integers(0, 10_000_000, n),
        "country": country,
        "city": city,
        "birth_year": birth,
        "gender": gender,
        "channel": acq,
        "opt_in": rng.random(n) < _P["opt_in_p"][group],
        "updated_ts": np.maximum(updated, signup_ts),
        "aov_median": _P["aov_median"][group] * rng.lognormal(0.0, 0.3, n),
    }


def _build_customers(n: int, seed: int, as_of_ts: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, _S_CUSTOMERS)
    group = rng.permutation(np.repeat(np.arange(7, dtype=np.int8), _group_counts(n)))
    lo, hi = _P["signup_lo"][group], _P["signup_hi"][group]
    ago_days = lo + rng.random(n) * (hi - lo)
    signup = as_of_ts - np.round(ago_days * DAY).astype(np.int64)
    order = np.argsort(signup, kind="stable")  # ids follow signup order, as in a real CRM
    group, signup = group[order], signup[order]
    return _customer_attrs(rng, group, signup, as_of_ts)


def _build_population(customers: int, seed: int, as_of: date) -> _Population:
    if customers < 1:
        raise ValueError("customers must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    as_of_ts = _epoch(as_of)
    history_start = as_of_ts - HISTORY_DAYS * DAY
    pop = _Population(seed=seed, base_customers=customers, history_start=history_start)
    c = _build_customers(customers, seed, as_of_ts)
    orders, first_ts, last_ts = _build_orders(c, seed, as_of_ts)
    has_order = np.bincount(orders["cust"], minlength=customers) > 0
    refs = _build_referrals(c, seed, as_of_ts, history_start)
    referred = refs["referee"][(refs["referee"] >= 0) & (refs["referee"] != refs["referrer"])]
    c["channel"][referred] = _CHANNEL_CODE["referral"]
    pop.customers = c
    pop.orders = orders
    pop.referrals = refs
    pop.surveys = _build_surveys(c, seed, as_of_ts, first_ts, last_ts, has_order)
    pop.events = _build_events(c, seed, as_of_ts, first_ts, last_ts, has_order)
    return pop
