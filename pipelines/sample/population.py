"""The population: customers (with their hidden behaviour group) and all their records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from pipelines.sample.dates import DAY, HISTORY_DAYS, epoch_seconds
from pipelines.sample.draws import S_CUSTOMERS, make_rng, pick_index
from pipelines.sample.engagement import build_events, build_surveys
from pipelines.sample.orders import build_orders
from pipelines.sample.params import (
    ACQ,
    ACQ_P,
    BEHAVIOUR_GROUPS,
    CHANNEL_CODE,
    CITY_COUNT,
    CITY_START,
    COUNTRY_P,
    FIRST_NAMES,
    GENDER_P,
    GENDERS,
    GROUP_SHARES,
    LAST_NAMES,
    PARAMS,
)
from pipelines.sample.referrals import build_referrals


@dataclass
class Population:
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


def customer_attrs(
    rng: np.random.Generator, group: np.ndarray, signup_ts: np.ndarray, end_ts: int
) -> dict[str, np.ndarray]:
    n = len(group)
    country = pick_index(rng, np.array(COUNTRY_P), n).astype(np.int8)
    city = (CITY_START[country] + np.floor(rng.random(n) * CITY_COUNT[country])).astype(np.int16)
    birth = np.clip(np.round(rng.normal(1984, 12, n)), 1940, 2008).astype(np.int16)
    birth[rng.random(n) < 0.04] = -1
    gender = pick_index(rng, np.array(GENDER_P), n).astype(np.int8)
    gender[gender == len(GENDERS)] = -1
    acq = np.array([CHANNEL_CODE[c] for c in ACQ], dtype=np.int8)[pick_index(rng, ACQ_P, n)]
    # updated_at: mostly soon after signup, sometimes much later (profile edits)
    span = (end_ts - 60 - signup_ts).astype(np.float64)
    updated = signup_ts + (span * rng.random(n) ** 4).astype(np.int64)
    return {
        "group": group.astype(np.int8),
        "signup_ts": signup_ts.astype(np.int64),
        "first_name": rng.integers(0, len(FIRST_NAMES), n).astype(np.int16),
        "last_name": rng.integers(0, len(LAST_NAMES), n).astype(np.int16),
        "phone": rng.integers(0, 10_000_000, n),
        "country": country,
        "city": city,
        "birth_year": birth,
        "gender": gender,
        "channel": acq,
        "opt_in": rng.random(n) < PARAMS["opt_in_p"][group],
        "updated_ts": np.maximum(updated, signup_ts),
        "aov_median": PARAMS["aov_median"][group] * rng.lognormal(0.0, 0.3, n),
    }


def _build_customers(n: int, seed: int, as_of_ts: int) -> dict[str, np.ndarray]:
    rng = make_rng(seed, S_CUSTOMERS)
    group = rng.permutation(np.repeat(np.arange(7, dtype=np.int8), _group_counts(n)))
    lo, hi = PARAMS["signup_lo"][group], PARAMS["signup_hi"][group]
    ago_days = lo + rng.random(n) * (hi - lo)
    signup = as_of_ts - np.round(ago_days * DAY).astype(np.int64)
    order = np.argsort(signup, kind="stable")  # ids follow signup order, as in a real CRM
    group, signup = group[order], signup[order]
    return customer_attrs(rng, group, signup, as_of_ts)


def build_population(customers: int, seed: int, as_of: date) -> Population:
    if customers < 1:
        raise ValueError("customers must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    as_of_ts = epoch_seconds(as_of)
    history_start = as_of_ts - HISTORY_DAYS * DAY
    pop = Population(seed=seed, base_customers=customers, history_start=history_start)
    c = _build_customers(customers, seed, as_of_ts)
    orders, first_ts, last_ts = build_orders(c, seed, as_of_ts)
    has_order = np.bincount(orders["cust"], minlength=customers) > 0
    refs = build_referrals(c, seed, as_of_ts, history_start)
    referred = refs["referee"][(refs["referee"] >= 0) & (refs["referee"] != refs["referrer"])]
    c["channel"][referred] = CHANNEL_CODE["referral"]
    pop.customers = c
    pop.orders = orders
    pop.referrals = refs
    pop.surveys = build_surveys(c, seed, as_of_ts, first_ts, last_ts, has_order)
    pop.events = build_events(c, seed, as_of_ts, first_ts, last_ts, has_order)
    return pop
