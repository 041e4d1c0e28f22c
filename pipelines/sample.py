"""Synthetic nightly CRM exports that follow the export contract (shared/spec/crm-exports.md).

    python -m pipelines.sample --customers 5000 --out data/exports [--seed 42]
        [--as-of 2026-11-21] [--days 1]

writes `<out>/<as_of ISO>/` with every contract table as CSV plus `manifest.json` (written
last), and the hidden behaviour group of every customer to `<out>/_ground_truth/<as_of>.csv`
(outside the export folder, so ingest never reads it).  `--days K` writes K consecutive
full exports: the base population at `--as-of`, then one day of small changes per
following day (`--as-of` + 1, + 2, ...).

Design:
- Deterministic: every random draw comes from `numpy.random.Generator(PCG64([seed, stream,
  ...]))` with a fixed stream number per part (customers, orders, referrals, surveys, events,
  marketing months, program-cost months, next-day changes), no wall clock, and money is
  written from integer cents as plain `d.cc` text.  Same arguments => byte-identical files.
- Vectorised with numpy; CSV is written with `pyarrow.csv` in chunks, and the manifest
  checksum is computed by streaming the written file.
- Every timestamp is before the export date (midnight UTC); the history spans 3 years.
- Customers belong to one of `BEHAVIOUR_GROUPS`, which differ strongly in recency, order
  count, order value, tenure, NPS/CSAT, refund rate, referrals, reviews/shares and support
  tickets (see `_GROUP_PARAMS`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines.schemas import (
    ACQUISITION_CHANNELS,
    EVENT_TYPES,
    ORDER_STATUSES,
    REFERRAL_CHANNELS,
    REFERRAL_STATUSES,
    REWARD_TYPES,
    TABLES,
)

DAY = 86_400
HOUR = 3_600
HISTORY_DAYS = 1095  # 3 years of history before the first export
DEFAULT_AS_OF = date(2026, 11, 21)
BASE_CURRENCY = "USD"

# Files of one export, in the order they are written (manifest.json comes last).
EXPORT_TABLES = (
    "customers", "orders", "referrals", "surveys", "events", "marketing_spend",
    "referral_program_costs", "fx_rates",
)
GROUND_TRUTH_DIR = "_ground_truth"

BEHAVIOUR_GROUPS = (
    "advocates", "regulars", "big_spenders", "new", "lapsed", "detractors", "prospects",
)
GROUP_SHARES = {
    "advocates": 0.08, "regulars": 0.30, "big_spenders": 0.10, "new": 0.15,
    "lapsed": 0.20, "detractors": 0.10, "prospects": 0.07,
}
ADV, REG, BIG, NEW, LAP, DET, PRO = range(7)

# Per-group parameters, one value per group in BEHAVIOUR_GROUPS order:
#                      adv    reg    big    new    lap    det    pro
_GROUP_PARAMS: dict[str, tuple[float, ...]] = {
    # signup, in days before the export date: uniform in [lo, hi]
    "signup_lo":      (400,   250,   200,     1,   420,   150,     1),
    "signup_hi":      (1095, 1095,  1095,    60,  1095,  1095,  1095),
    # orders per customer (all statuses): base + NegBin(r=3, mean=extra), capped
    "orders_base":    (8,       5,     2,     1,     2,     3,     0),
    "orders_extra":   (17,     11,     1,   0.4,     3,     4,     0),
    "orders_max":     (250,   200,     6,     2,    12,    15,     1),
    # days since the last order: lo + exponential(scale) truncated at hi
    "last_lo":        (0.05, 0.05,    20,     0,   300,    30,     0),
    "last_scale":     (8,      15,    80,     1,   200,    90,     1),
    "last_hi":        (30,     60,   180,     1,   800,   240,     1),
    # order value: customer median (lognormal around this), discounts, refunds
    "aov_median":     (75,     45,   480,    40,    38,    55,    50),
    "discount_p":     (0.20, 0.35,  0.05,  0.60,  0.30,  0.30,  0.30),
    "refund_p":       (0.01, 0.025, 0.04,  0.03,  0.04,  0.30,  0.25),
    "opt_in_p":       (0.85, 0.70,  0.50,  0.65,  0.35,  0.40,  0.45),
    # surveys: P(responds at all), then 1 + Poisson(extra) responses
    "survey_p":       (0.90, 0.45,  0.35,  0.30,  0.25,  0.90,  0.05),
    "survey_extra":   (0.6,  0.4,   0,     0,     0,     0.5,   0),
    # referrals: P(sends invitations that did not convert); advocates send 1 + Poisson(1.5)
    "sender_p":       (1.0,  0.12,  0,     0.03,  0,     0,     0),
    # relative chance of being a converted referee
    "referee_w":      (1.0,  0.8,   0.6,   2.5,   0.6,   0.8,   0),
    # events in the last 365 days: base + Poisson(lambda)
    "review_base":    (2,     0,     0,     0,     0,     0,     0),
    "review_lam":     (3,   0.3,     0,  0.15,     0,   0.2,     0),
    "share_base":     (2,     0,     0,     0,     0,     0,     0),
    "share_lam":      (4,   0.1,     0,   0.1,     0,     0,     0),
    "ticket_base":    (0,     0,     0,     0,     0,     3,     0),
    "ticket_lam":     (0.2, 0.3,   0.1,   0.3,     0,     3,   0.1),
    "open_lam":       (6,     4,   1.5,     2,   0.5,     1,   1.5),  # opted-in only
    "click_lam":      (1.5, 0.8,   0.3,   0.4,  0.05,   0.1,   0.2),  # opted-in only
    "visit_lam":      (5,     4,   1.5,   2.5,  0.15,     1,     1),
    # next-day changes: P(a new order on the day), P(a site visit on the day)
    "next_order_p":   (0.05, 0.025, 0.005, 0.01,  0,   0.005,   0),
    "next_visit_p":   (0.03, 0.02,  0.01,  0.03, 0.001, 0.01, 0.02),
}
_P = {k: np.asarray(v, dtype=np.float64) for k, v in _GROUP_PARAMS.items()}

# NPS 0..10 and CSAT 1..5 distributions per group (rows: groups; columns: scores).
_NPS_PROBS = np.zeros((7, 11))
_NPS_PROBS[ADV, 9:11] = (0.35, 0.65)
_NPS_PROBS[REG, 7:10] = (0.30, 0.45, 0.25)
_NPS_PROBS[BIG, 6:10] = (0.15, 0.35, 0.35, 0.15)
_NPS_PROBS[NEW, 6:11] = (0.10, 0.20, 0.30, 0.25, 0.15)
_NPS_PROBS[LAP, 3:9] = 1 / 6
_NPS_PROBS[DET, 0:6] = (0.15, 0.15, 0.15, 0.20, 0.20, 0.15)
_NPS_PROBS[PRO, 5:9] = 0.25
_CSAT_PROBS = np.zeros((7, 5))  # columns: csat 1..5
_CSAT_PROBS[ADV, 3:5] = (0.30, 0.70)
_CSAT_PROBS[REG, 2:5] = (0.20, 0.50, 0.30)
_CSAT_PROBS[BIG, 2:5] = (0.20, 0.50, 0.30)
_CSAT_PROBS[NEW, 2:5] = (0.20, 0.40, 0.40)
_CSAT_PROBS[LAP, 1:4] = 1 / 3
_CSAT_PROBS[DET, 0:2] = (0.55, 0.45)
_CSAT_PROBS[PRO, 2:4] = 0.5

# Geography: (country, city, currency other than USD or None); country weights below.
_COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "AU")
_COUNTRY_P = (0.72, 0.05, 0.08, 0.05, 0.04, 0.03, 0.03)
_CITIES = {
    "US": ("New York", "Los Angeles", "Chicago", "Houston", "Seattle", "Austin", "Denver"),
    "CA": ("Toronto", "Vancouver", "Montreal"),
    "GB": ("London", "Manchester", "Bristol"),
    "DE": ("Berlin", "Munich", "Hamburg"),
    "FR": ("Paris", "Lyon"),
    "NL": ("Amsterdam", "Utrecht"),
    "AU": ("Sydney", "Melbourne"),
}
_CITY_NAMES = tuple(c for k in _COUNTRIES for c in _CITIES[k])
_CITY_START = np.cumsum([0] + [len(_CITIES[k]) for k in _COUNTRIES])[:-1]
_CITY_COUNT = np.array([len(_CITIES[k]) for k in _COUNTRIES])
CURRENCIES = ("USD", "EUR", "GBP")
FX_RATES = {"USD": "1.00", "EUR": "1.08", "GBP": "1.27"}  # rate_to_base (USD per unit)
_FX = np.array([1.0, 1.08, 1.27])
_COUNTRY_CURRENCY = np.array([0, 0, 2, 1, 1, 1, 0])  # local currency per country
_LOCAL_CURRENCY_P = 0.35  # share of EU/UK orders paid in the local currency

_FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella",
    "Lucas", "Mia", "Mateo", "Amelia", "Ethan", "Harper", "Leo", "Lea", "Jonas", "Chloe",
    "Hugo", "Anna", "Finn", "Zoe", "Max", "Nora", "Omar", "Priya", "Yuki", "Sara", "Diego",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Lopez",
    "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Clark", "Lewis",
    "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Muller",
    "Schmidt", "Dubois", "de Vries",
)
_GENDERS = ("female", "male", "non_binary")
_GENDER_P = (0.49, 0.46, 0.01, 0.04)  # last: unknown (empty)
# Acquisition channels other than "referral" (that one is set only for actual referees).
_ACQ = tuple(c for c in ACQUISITION_CHANNELS if c != "referral")
_ACQ_WEIGHTS = {
    "organic": 0.30, "paid_search": 0.20, "paid_social": 0.15, "social": 0.08,
    "email": 0.07, "partner": 0.05, "affiliate": 0.06, "other": 0.04,
}
_ACQ_P = np.array([_ACQ_WEIGHTS[c] for c in _ACQ]) / sum(_ACQ_WEIGHTS[c] for c in _ACQ)
_CHANNEL_CODE = {c: i for i, c in enumerate(ACQUISITION_CHANNELS)}

_CATEGORIES = (
    "electronics", "home", "apparel", "beauty", "sports", "books", "grocery", "toys",
)
_CAT_P = np.array([0.12, 0.15, 0.22, 0.12, 0.10, 0.09, 0.12, 0.08])
_CAT_P_BIG = np.array([0.45, 0.30, 0.10, 0.03, 0.07, 0.01, 0.01, 0.03])

_STATUS = {s: i for i, s in enumerate(ORDER_STATUSES)}
_REF_STATUS = {s: i for i, s in enumerate(REFERRAL_STATUSES)}
_REF_CHANNEL_P = np.array([0.35, 0.20, 0.25, 0.08, 0.08, 0.03, 0.01])  # REFERRAL_CHANNELS
_REWARD = {r: i for i, r in enumerate(REWARD_TYPES)}
# Double-sided rewards in cents: (referrer, referee), by reward type.
_REWARD_CENTS = {"credit": (2000, 1000), "discount": (1500, 1500)}
_EVENT = {e: i for i, e in enumerate(EVENT_TYPES)}

# Paid acquisition: marketing_spend channels and their cost per acquired customer.
_PAID_CHANNELS = ("paid_search", "paid_social", "affiliate", "partner", "email")
_PAID_CAC = np.array([55.0, 40.0, 30.0, 35.0, 8.0])

# Random streams (second element of the PCG64 seed), one per part of the data.
_S_CUSTOMERS, _S_ORDERS, _S_REFERRALS, _S_SURVEYS, _S_EVENTS = 1, 2, 3, 4, 5
_S_MARKETING, _S_PROGRAM, _S_DAY = 6, 7, 100

_ID_WIDTH = {"C": 7, "O": 8, "R": 6, "S": 7, "E": 9}
_CHUNK_ROWS = 500_000


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, *stream]))


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _group_counts(n: int) -> np.ndarray:
    """Customers per group: the shares of GROUP_SHARES, rounded by largest remainder."""
    shares = np.array([GROUP_SHARES[g] for g in BEHAVIOUR_GROUPS])
    raw = shares * n
    counts = np.floor(raw).astype(np.int64)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts


def _trunc_exp(rng: np.random.Generator, scale: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Exponential(scale) truncated to [0, width] (inverse CDF, one draw per row)."""
    u = rng.random(len(scale))
    width = np.maximum(width, 0.0)
    return -scale * np.log1p(-u * -np.expm1(-width / scale))


def _pick(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    """n draws from a categorical distribution (vectorised)."""
    cdf = np.cumsum(probs)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"),
                      len(probs) - 1)


def _pick_rows(rng: np.random.Generator, cdf_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row, each row with its own CDF (2-D array)."""
    u = rng.random(len(cdf_rows))
    return np.minimum((u[:, None] >= cdf_rows).sum(axis=1), cdf_rows.shape[1] - 1)


def _weighted_sample(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """k distinct indices, chance proportional to weight (Efraimidis-Spirakis), sorted."""
    ok = np.flatnonzero(weights > 0)
    k = min(k, len(ok))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.log(rng.random(len(ok))) / weights[ok]
    return np.sort(ok[np.argpartition(-keys, k - 1)[:k]])


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


def _concat(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in cols.items()}


# --------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------


def _order_values(
    rng: np.random.Generator, c: dict[str, np.ndarray], cust: np.ndarray
) -> dict[str, np.ndarray]:
    """Amount, discount (local-currency cents), currency and category of new orders."""
    m = len(cust)
    g = c["group"][cust]
    gross = np.round(c["aov_median"][cust] * rng.lognormal(0.0, 0.4, m) * 100).astype(
        np.int64)
    gross = np.maximum(gross, 199)
    has_disc = rng.random(m) < _P["discount_p"][g]
    disc = np.where(has_disc, np.round(gross * rng.uniform(0.05, 0.30, m)), 0).astype(
        np.int64)
    free = rng.random(m) < 0.002  # free / 100 % promo orders: amount 0
    disc = np.where(free, gross, disc)
    amount = gross - disc
    local = _COUNTRY_CURRENCY[c["country"][cust]]
    currency = np.where((local > 0) & (rng.random(m) < _LOCAL_CURRENCY_P), local, 0)
    rate = _FX[currency]
    cat_big = _pick(rng, _CAT_P_BIG, m)
    cat_any = _pick(rng, _CAT_P, m)
    return {
        "amount": np.round(amount / rate).astype(np.int64),
        "discount": np.round(disc / rate).astype(np.int64),
        "currency": currency.astype(np.int8),
        "category": np.where(g == BIG, cat_big, cat_any).astype(np.int8),
    }


def _build_orders(
    c: dict[str, np.ndarray], seed: int, as_of_ts: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Orders of the base population; also each customer's first and last order time."""
    rng = _rng(seed, _S_ORDERS)
    g = c["group"]
    n = len(g)
    signup = c["signup_ts"]
    signup_ago = (as_of_ts - signup) / DAY
    # order counts: skewed (negative binomial), by group
    r = 3.0
    k = _P["orders_base"][g] + rng.negative_binomial(r, r / (r + _P["orders_extra"][g]))
    k = np.minimum(k, _P["orders_max"][g]).astype(np.int64)
    pro = g == PRO
    k[pro] = rng.random(int(pro.sum())) < 0.2  # a fifth of prospects: one failed order
    new = g == NEW
    # days since the last order, then the first order shortly after signup
    lo = _P["last_lo"][g]
    last_ago = lo + _trunc_exp(rng, _P["last_scale"][g], _P["last_hi"][g] - lo)
    last_ago = np.minimum(last_ago, signup_ago - 10)
    delay = _trunc_exp(rng, np.full(n, 7.0), signup_ago - last_ago - 0.01)
    first_ago = signup_ago - delay
    # new customers: first order within 5 days of signup, an optional second later on
    u = rng.random(n)
    new_first = signup_ago - u * np.minimum(5.0, 0.9 * signup_ago)
    new_last = np.where(k >= 2, new_first * rng.uniform(0.02, 0.95, n), new_first)
    first_ago = np.where(new, new_first, first_ago)
    last_ago = np.where(new, new_last, last_ago)
    # prospects: their one order (never completed) within 30 days of signup
    pro_first = signup_ago - u * np.minimum(30.0, 0.9 * signup_ago)
    first_ago = np.where(pro, pro_first, first_ago)
    last_ago = np.where(pro, pro_first, last_ago)
    first_ts = as_of_ts - np.round(first_ago * DAY).astype(np.int64)
    last_ts = as_of_ts - np.round(last_ago * DAY).astype(np.int64)
    first_ts = np.clip(first_ts, signup, as_of_ts - 60)
    last_ts = np.clip(last_ts, first_ts, as_of_ts - 60)

    cust = np.repeat(np.arange(n, dtype=np.int32), k)
    m = len(cust)
    start = np.repeat(np.cumsum(k) - k, k)
    rank = np.arange(m) - start
    kk = k[cust]
    f, la = first_ts[cust], last_ts[cust]
    ts = f + np.floor(rng.random(m) * (la - f)).astype(np.int64)
    is_last = rank == kk - 1
    ts = np.where(rank == 0, f, ts)
    ts = np.where(is_last, la, ts)
    # same-day repeat orders: a few orders follow the previous one within 3 hours
    dup = np.flatnonzero((rank > 0) & ~is_last & (rng.random(m) < 0.03))
    ts[dup] = ts[dup - 1] + rng.integers(300, 3 * HOUR, len(dup))
    ts = np.minimum(ts, as_of_ts - 60)

    gg = g[cust]
    u = rng.random(m)
    refund_p = _P["refund_p"][gg]
    status = np.where(u < refund_p, _STATUS["refunded"], _STATUS["completed"])
    status = np.where((u >= refund_p) & (u < refund_p + 0.02), _STATUS["cancelled"], status)
    recent = ts >= as_of_ts - 3 * DAY
    pend = recent & (rng.random(m) < 0.4) & (~is_last | (np.isin(gg, (ADV, REG)) & (kk >= 2)))
    status = np.where(pend, _STATUS["pending"], status)
    # buying customers keep their last order completed unless it is a recent pending one;
    # prospects never complete one
    status = np.where(is_last & (gg != PRO) & ~pend, _STATUS["completed"], status)
    pro_status = np.where(u < 0.25, _STATUS["refunded"], _STATUS["cancelled"])
    status = np.where(gg == PRO, np.where(recent, _STATUS["pending"], pro_status), status)
    # safety net: every buying customer has at least one completed order
    done = np.bincount(cust, weights=(status == _STATUS["completed"]).astype(np.float64),
                       minlength=n)
    fix = is_last & (gg != PRO) & (done[cust] == 0)
    status = np.where(fix, _STATUS["completed"], status).astype(np.int8)

    upd = ts + rng.integers(60, 2 * HOUR, m)
    upd = np.where(status == _STATUS["refunded"], ts + rng.integers(DAY, 30 * DAY, m), upd)
    upd = np.where(status == _STATUS["cancelled"], ts + rng.integers(600, DAY, m), upd)
    upd = np.where(status == _STATUS["pending"], ts, upd)
    upd = np.minimum(upd, as_of_ts - 1)

    orders = {"cust": cust, "ts": ts, "status": status, "updated_ts": upd}
    orders.update(_order_values(rng, c, cust))
    order = np.argsort(ts, kind="stable")  # order ids follow time, as in a real CRM
    orders = _take(orders, order)
    orders["id"] = np.arange(1, m + 1, dtype=np.int64)
    return orders, first_ts, last_ts


# --------------------------------------------------------------------------------------
# Referrals
# --------------------------------------------------------------------------------------


def _referral_rows(
    n: int,
    referrer: np.ndarray,
    sent: np.ndarray,
    status: int | np.ndarray,
    *,
    referee: np.ndarray | None = None,
    converted: np.ndarray | None = None,
    email_kind: int | np.ndarray = 1,
) -> dict[str, np.ndarray]:
    """Referral columns; email_kind 0 = referee's (or referrer's) own email as referee_email
    via referee, 1 = a friend's address, 2 = the referrer's email in upper case."""
    none = np.full(n, -1, dtype=np.int64)
    return {
        "referrer": referrer.astype(np.int64),
        "referee": none.copy() if referee is None else referee.astype(np.int64),
        "email_kind": np.broadcast_to(np.asarray(email_kind, dtype=np.int8), (n,)).copy(),
        "sent_ts": sent.astype(np.int64),
        "status": np.broadcast_to(np.asarray(status, dtype=np.int8), (n,)).copy(),
        "converted_ts": none.copy() if converted is None else converted.astype(np.int64),
    }


def _choose_referrers(
    rng: np.random.Generator,
    pools: Sequence[np.ndarray],
    signup: np.ndarray,
    sent: np.ndarray,
    pool_choice: np.ndarray,
) -> np.ndarray:
    """For each invitation, a referrer from its pool who signed up > 1 day before it was
    sent (pools are sorted by signup, as customer indices are); -1 if nobody qualifies.
    Falls back to pool 0 when the chosen pool has nobody early enough."""
    out = np.full(len(sent), -1, dtype=np.int64)
    u = rng.random(len(sent))
    for p in range(len(pools) - 1, -1, -1):
        pool = pools[p]
        todo = (out < 0) & (pool_choice >= p)
        if len(pool) == 0 or not todo.any():
            continue
        eligible = np.searchsorted(signup[pool], sent[todo] - DAY, side="left")
        pick = np.where(eligible > 0, pool[np.floor(u[todo] * eligible).astype(np.int64)
                                           .clip(0, len(pool) - 1)], -1)
        out[todo] = pick
    return out


def _build_referrals(
    c: dict[str, np.ndarray], seed: int, as_of_ts: int, history_start: int
) -> dict[str, np.ndarray]:
    rng = _rng(seed, _S_REFERRALS)
    g = c["group"]
    n = len(g)
    signup = c["signup_ts"]
    parts: list[dict[str, np.ndarray]] = []

    # 1. invitations that did not (yet) convert: advocates send many, few others send one
    sender = rng.random(n) < _P["sender_p"][g]
    k = np.where(g == ADV, 1 + rng.poisson(1.5, n), 1) * sender
    who = np.repeat(np.arange(n), k)
    gw = g[who]
    lo = signup[who] + np.where(gw == NEW, HOUR, DAY)
    recent_adv = (gw == ADV) & (rng.random(len(who)) < 0.85)
    lo = np.where(recent_adv, np.maximum(lo, as_of_ts - 365 * DAY), lo)
    lo = np.where(gw == REG, np.maximum(lo, as_of_ts - 730 * DAY), lo)
    hi = as_of_ts - HOUR
    sent = lo + np.floor(rng.random(len(who)) * (hi - lo)).astype(np.int64)
    age = as_of_ts - sent
    u = rng.random(len(who))
    st = np.where(
        age < 30 * DAY,
        np.where(u < 0.9, _REF_STATUS["sent"], _REF_STATUS["rejected"]),
        np.where(u < 0.85, _REF_STATUS["expired"],
                 np.where(u < 0.93, _REF_STATUS["rejected"], _REF_STATUS["sent"])),
    )
    parts.append(_referral_rows(len(who), who, sent, st))

    adv_pool = np.flatnonzero(g == ADV)
    other_pool = np.flatnonzero(sender & (g != ADV))
    adv_first = signup[adv_pool[0]] if len(adv_pool) else as_of_ts

    # 2. converted: referees are real customers whose signup is the conversion time
    weights = _P["referee_w"][g] * (signup >= max(history_start + 45 * DAY,
                                                  adv_first + 3 * DAY))
    referee = _weighted_sample(rng, weights, round(0.08 * n))
    conv = signup[referee]
    gap = (0.1 + _trunc_exp(rng, np.full(len(referee), 5.0), np.full(len(referee), 40.0)))
    sent = conv - np.round(gap * DAY).astype(np.int64)
    choice = (rng.random(len(referee)) < 0.10).astype(np.int8)  # 10 % by other senders
    referrer = _choose_referrers(rng, (adv_pool, other_pool), signup, sent, choice)
    ok = referrer >= 0
    referee, conv, sent, referrer = referee[ok], conv[ok], sent[ok], referrer[ok]
    kind = (rng.random(len(referee)) < 0.08).astype(np.int8)  # 8 % used another address
    converted = _referral_rows(len(referee), referrer, sent, _REF_STATUS["converted"],
                               referee=referee, converted=conv, email_kind=kind)
    parts.append(converted)

    # 3. signed up but never bought: a third of the prospects came through a referral
    cand = np.flatnonzero((g == PRO) & (signup >= adv_first + 3 * DAY)
                          & (signup >= history_start + 45 * DAY))
    pros = cand[rng.random(len(cand)) < 0.3]
    p_sent = signup[pros] - np.round(
        (0.1 + _trunc_exp(rng, np.full(len(pros), 5.0), np.full(len(pros), 40.0))) * DAY
    ).astype(np.int64)
    p_ref = _choose_referrers(rng, (adv_pool,), signup, p_sent,
                              np.zeros(len(pros), dtype=np.int8))
    ok = p_ref >= 0
    signed = _referral_rows(int(ok.sum()), p_ref[ok], p_sent[ok], _REF_STATUS["signed_up"],
                            referee=pros[ok], email_kind=0)
    parts.append(signed)

    # 4. duplicate conversions: a second converted referral for the same referee
    n_conv = len(converted["referee"])
    n_dup = min(n_conv, max(2, round(0.002 * n_conv)))
    d = np.sort(rng.choice(n_conv, n_dup, replace=False)) if n_dup else np.zeros(0, int)
    d_sent = converted["sent_ts"][d] - rng.integers(0, 5 * DAY, len(d))
    d_ref = _choose_referrers(rng, (adv_pool,), signup, d_sent,
                              np.zeros(len(d), dtype=np.int8))
    clash = d_ref == converted["referrer"][d]
    d_ref = np.where(clash, np.roll(d_ref, 1), d_ref)  # another advocate
    ok = (d_ref >= 0) & (d_ref != converted["referrer"][d]) & (
        signup[np.maximum(d_ref, 0)] < d_sent - DAY)
    d, d_ref, d_sent = d[ok], d_ref[ok], d_sent[ok]
    same_time = np.arange(len(d)) % 2 == 0  # half tie on converted_at (-> referral_id)
    d_conv = converted["converted_ts"][d] + np.where(
        same_time, 0, rng.integers(HOUR, 3 * DAY, len(d)))
    d_conv = np.minimum(d_conv, as_of_ts - 60)
    parts.append(_referral_rows(len(d), d_ref, d_sent, _REF_STATUS["converted"],
                                referee=converted["referee"][d], converted=d_conv,
                                email_kind=0))

    # 5. self-referrals: referee = referrer, or the referrer's own email (other case)
    total = sum(len(p["referrer"]) for p in parts)
    n_self = max(2, round(0.001 * total))
    if len(adv_pool):
        s_who = np.sort(rng.choice(adv_pool, n_self, replace=len(adv_pool) < n_self))
        s_lo = np.maximum(signup[s_who] + DAY, as_of_ts - 365 * DAY)
        s_sent = s_lo + np.floor(rng.random(n_self) * (as_of_ts - 3 * DAY - s_lo)).astype(
            np.int64)
        half = (n_self + 1) // 2
        a = slice(0, half)
        parts.append(_referral_rows(
            half, s_who[a], s_sent[a], _REF_STATUS["converted"], referee=s_who[a],
            converted=s_sent[a] + rng.integers(HOUR, 2 * DAY, half), email_kind=0))
        b = slice(half, n_self)
        b_age = as_of_ts - s_sent[b]
        b_status = np.where(b_age < 30 * DAY, _REF_STATUS["sent"], _REF_STATUS["expired"])
        parts.append(_referral_rows(n_self - half, s_who[b], s_sent[b], b_status,
                                    email_kind=2))

    refs = _concat(parts)
    m = len(refs["referrer"])
    refs["channel"] = _pick(rng, _REF_CHANNEL_P, m).astype(np.int8)
    conv_mask = refs["status"] == _REF_STATUS["converted"]
    disc = rng.random(m) < 0.15
    refs["reward_type"] = np.where(disc, _REWARD["discount"], _REWARD["credit"]).astype(
        np.int8)
    refs["reward_referrer"] = np.where(
        conv_mask, np.where(disc, _REWARD_CENTS["discount"][0], _REWARD_CENTS["credit"][0]),
        -1).astype(np.int64)
    refs["reward_referee"] = np.where(
        conv_mask, np.where(disc, _REWARD_CENTS["discount"][1], _REWARD_CENTS["credit"][1]),
        -1).astype(np.int64)
    st = refs["status"]
    upd = refs["sent_ts"].copy()
    upd = np.where(conv_mask, refs["converted_ts"], upd)
    upd = np.where(st == _REF_STATUS["expired"], refs["sent_ts"] + 30 * DAY, upd)
    upd = np.where(st == _REF_STATUS["rejected"],
                   refs["sent_ts"] + rng.integers(HOUR, 5 * DAY, m), upd)
    signed_mask = st == _REF_STATUS["signed_up"]
    upd = np.where(signed_mask, signup[np.maximum(refs["referee"], 0)], upd)
    refs["updated_ts"] = np.minimum(upd, as_of_ts - 1)
    order = np.argsort(refs["sent_ts"], kind="stable")
    refs = _take(refs, order)
    refs["id"] = np.arange(1, m + 1, dtype=np.int64)
    return refs


# --------------------------------------------------------------------------------------
# Surveys and events
# --------------------------------------------------------------------------------------


def _survey_scores(rng: np.random.Generator, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = len(g)
    nps = _pick_rows(rng, np.cumsum(_NPS_PROBS, axis=1)[g]).astype(np.int8)
    csat = (1 + _pick_rows(rng, np.cumsum(_CSAT_PROBS, axis=1)[g])).astype(np.int8)
    u = rng.random(m)
    nps[u < 0.15] = -1  # only csat
    csat[(u >= 0.15) & (u < 0.30)] = -1  # only nps
    return nps, csat


def _build_surveys(
    c: dict[str, np.ndarray], seed: int, as_of_ts: int, first_ts: np.ndarray,
    last_ts: np.ndarray, has_order: np.ndarray,
) -> dict[str, np.ndarray]:
    rng = _rng(seed, _S_SURVEYS)
    g = c["group"]
    n = len(g)
    k = (rng.random(n) < _P["survey_p"][g]) * (1 + rng.poisson(_P["survey_extra"][g]))
    cust = np.repeat(np.arange(n, dtype=np.int32), k)
    lo = np.where(has_order, first_ts, c["signup_ts"])[cust]
    hi = np.where(has_order, np.minimum(last_ts + 30 * DAY, as_of_ts - 60), as_of_ts - 60)
    hi = np.maximum(hi[cust], lo + 1)
    ts = np.minimum(lo + np.floor(rng.random(len(cust)) * (hi - lo)).astype(np.int64),
                    as_of_ts - 60)
    nps, csat = _survey_scores(rng, g[cust])
    s = {"cust": cust, "ts": ts, "nps": nps, "csat": csat}
    s = _take(s, np.argsort(ts, kind="stable"))
    s["id"] = np.arange(1, len(cust) + 1, dtype=np.int64)
    return s


def _build_events(
    c: dict[str, np.ndarray], seed: int, as_of_ts: int, first_ts: np.ndarray,
    last_ts: np.ndarray, has_order: np.ndarray,
) -> dict[str, np.ndarray]:
    rng = _rng(seed, _S_EVENTS)
    g = c["group"]
    n = len(g)
    signup = c["signup_ts"]
    year_ago = as_of_ts - 365 * DAY
    start_any = np.maximum(signup, year_ago)
    start_buyer = np.maximum(np.where(has_order, first_ts, signup), year_ago)
    opt = c["opt_in"]
    plan = [  # (event type, count per customer, window start)
        ("review_posted", _P["review_base"][g] + rng.poisson(_P["review_lam"][g]),
         start_buyer),
        ("social_share", _P["share_base"][g] + rng.poisson(_P["share_lam"][g]), start_buyer),
        ("support_ticket", _P["ticket_base"][g] + rng.poisson(_P["ticket_lam"][g]),
         start_any),
        ("email_open", opt * rng.poisson(_P["open_lam"][g]), start_any),
        ("email_click", opt * rng.poisson(_P["click_lam"][g]), start_any),
        ("site_visit", rng.poisson(_P["visit_lam"][g]), start_any),
    ]
    parts = []
    for etype, k, lo_c in plan:
        k = k.astype(np.int64)
        cust = np.repeat(np.arange(n, dtype=np.int32), k)
        parts.append({"cust": cust, "type": np.full(len(cust), _EVENT[etype], np.int8),
                      "lo": lo_c[cust], "hi": np.full(len(cust), as_of_ts - 60)})
    # lapsed customers reviewed while they were active (outside the 365-day window)
    k = ((g == LAP) & has_order) * rng.poisson(0.3, n)
    cust = np.repeat(np.arange(n, dtype=np.int32), k)
    parts.append({"cust": cust, "type": np.full(len(cust), _EVENT["review_posted"], np.int8),
                  "lo": first_ts[cust], "hi": last_ts[cust] + DAY})
    e = _concat(parts)
    span = np.maximum(e["hi"] - e["lo"], 1)
    ts = np.minimum(e["lo"] + np.floor(rng.random(len(span)) * span).astype(np.int64),
                    as_of_ts - 60)
    ev = {"cust": e["cust"], "ts": ts, "type": e["type"]}
    ev = _take(ev, np.argsort(ts, kind="stable"))
    ev["id"] = np.arange(1, len(ts) + 1, dtype=np.int64)
    return ev


# --------------------------------------------------------------------------------------
# Population and next-day changes
# --------------------------------------------------------------------------------------


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


def _advance_one_day(pop: _Population, day: date, day_number: int) -> None:
    """Apply the changes that happen during `day` (the next export is dated day + 1):
    about 0.2 % new customers (some converting an open referral), new orders for ~1.5 %
    of active customers, pending orders completing, expiring invitations, a few new
    surveys and events."""
    rng = _rng(pop.seed, _S_DAY, day_number)
    t0 = _epoch(day)
    t1 = t0 + DAY
    c = pop.customers
    n_old = len(c["group"])

    # invitations sent 30 days ago expire (updated today)
    r = pop.referrals
    expiring = ((r["status"] == _REF_STATUS["sent"]) & (r["referee"] < 0)
                & (r["sent_ts"] >= t0 - 30 * DAY) & (r["sent_ts"] < t1 - 30 * DAY)
                & (rng.random(len(r["status"])) < 0.9))
    r["status"][expiring] = _REF_STATUS["expired"]
    r["updated_ts"][expiring] = r["sent_ts"][expiring] + 30 * DAY

    # new customers sign up today
    k = max(2, round(0.002 * pop.base_customers))
    group = np.where(rng.random(k) < 0.65, NEW, PRO).astype(np.int8)
    signup = t0 + np.sort(rng.integers(0, DAY - 2 * HOUR, k))
    new_c = _customer_attrs(rng, group, signup, t1)
    new_c["updated_ts"] = signup.copy()
    new_idx = np.arange(n_old, n_old + k)
    for key in c:
        c[key] = np.concatenate([c[key], new_c[key]])

    # some of them convert an open invitation (double-sided reward)
    open_ref = np.flatnonzero((r["status"] == _REF_STATUS["sent"]) & (r["referee"] < 0)
                              & (r["email_kind"] == 1) & (r["sent_ts"] >= t0 - 30 * DAY))
    buyers = new_idx[group == NEW]
    n_conv = min(len(open_ref), int(np.ceil(0.4 * len(buyers))))
    conv_ref = np.sort(rng.choice(open_ref, n_conv, replace=False))
    conv_cust = buyers[:n_conv]
    r["status"][conv_ref] = _REF_STATUS["converted"]
    r["referee"][conv_ref] = conv_cust
    r["email_kind"][conv_ref] = 0
    r["converted_ts"][conv_ref] = c["signup_ts"][conv_cust]
    r["updated_ts"][conv_ref] = c["signup_ts"][conv_cust]
    credit = r["reward_type"][conv_ref] == _REWARD["credit"]
    r["reward_referrer"][conv_ref] = np.where(credit, _REWARD_CENTS["credit"][0],
                                              _REWARD_CENTS["discount"][0])
    r["reward_referee"][conv_ref] = np.where(credit, _REWARD_CENTS["credit"][1],
                                             _REWARD_CENTS["discount"][1])
    c["channel"][conv_cust] = _CHANNEL_CODE["referral"]

    # pending orders complete
    o = pop.orders
    done = (o["status"] == _STATUS["pending"]) & (rng.random(len(o["status"])) < 0.6)
    o["status"][done] = _STATUS["completed"]
    o["updated_ts"][done] = t0 + rng.integers(0, DAY - 60, int(done.sum()))

    # new orders: every new buyer, plus active existing customers
    g_old = c["group"][:n_old]
    repeat = np.flatnonzero(rng.random(n_old) < _P["next_order_p"][g_old])
    cust = np.concatenate([repeat, buyers]).astype(np.int32)
    ts = np.concatenate([
        t0 + rng.integers(0, DAY - 60, len(repeat)),
        c["signup_ts"][buyers] + rng.integers(300, 2 * HOUR, len(buyers)),
    ])
    status = np.where(rng.random(len(cust)) < 0.05, _STATUS["pending"],
                      _STATUS["completed"])
    status[len(repeat):] = _STATUS["completed"]
    new_o = {"cust": cust, "ts": ts, "status": status.astype(np.int8),
             "updated_ts": np.minimum(ts + rng.integers(60, HOUR, len(cust)), t1 - 1)}
    new_o.update(_order_values(rng, c, cust))
    new_o = _take(new_o, np.argsort(ts, kind="stable"))
    new_o["id"] = o["id"][-1] + 1 + np.arange(len(cust)) if len(o["id"]) else (
        np.arange(1, len(cust) + 1))
    pop.orders = _concat([o, new_o])

    # a few survey responses and engagement events
    g_all = c["group"]
    n_all = len(g_all)
    s_cust = np.flatnonzero((rng.random(n_old) < 0.001) & (g_old != PRO)).astype(np.int32)
    nps, csat = _survey_scores(rng, g_old[s_cust])
    s_ts = t0 + rng.integers(0, DAY - 60, len(s_cust))
    new_s = {"cust": s_cust, "ts": s_ts, "nps": nps, "csat": csat}
    new_s = _take(new_s, np.argsort(s_ts, kind="stable"))
    last_s = pop.surveys["id"][-1] if len(pop.surveys["id"]) else 0
    new_s["id"] = last_s + 1 + np.arange(len(s_cust))
    pop.surveys = _concat([pop.surveys, new_s])

    ev_parts = []
    for etype, p in (
        ("site_visit", _P["next_visit_p"][g_all]),
        ("email_open", _P["next_visit_p"][g_all] * c["opt_in"]),
        ("review_posted", 0.01 * (g_all == ADV)),
        ("social_share", 0.01 * (g_all == ADV)),
        ("support_ticket", 0.01 * (g_all == DET)),
    ):
        who = np.flatnonzero(rng.random(n_all) < p).astype(np.int32)
        ev_parts.append({"cust": who, "type": np.full(len(who), _EVENT[etype], np.int8)})
    ev = _concat(ev_parts)
    lo = np.maximum(t0, c["signup_ts"][ev["cust"]])
    ev["ts"] = lo + np.floor(rng.random(len(lo)) * (t1 - 60 - lo)).astype(np.int64)
    ev = _take(ev, np.argsort(ev["ts"], kind="stable"))
    last_e = pop.events["id"][-1] if len(pop.events["id"]) else 0
    ev["id"] = last_e + 1 + np.arange(len(lo))
    pop.events = _concat([pop.events, ev])


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _ids(prefix: str, nums: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    text = pc.cast(pa.array(np.asarray(nums, dtype=np.int64), mask=mask), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(text, _ID_WIDTH[prefix], "0"), "")


def _emails(nums: np.ndarray, upper: bool = False) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(np.asarray(nums, dtype=np.int64)), pa.string()),
                        _ID_WIDTH["C"], "0")
    if upper:
        return pc.binary_join_element_wise("USER", text, "@EXAMPLE.COM", "")
    return pc.binary_join_element_wise("user", text, "@example.com", "")


def _money(cents: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Integer cents as plain decimal text 'd.cc' (null where mask)."""
    cents = np.asarray(cents, dtype=np.int64)
    if (cents[~mask] if mask is not None else cents).min(initial=0) < 0:
        raise ValueError("negative money")
    whole = pc.cast(pa.array(cents // 100, mask=mask), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


def _ts(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64), type=pa.timestamp("s"), mask=mask)


def _dates(seconds: np.ndarray) -> pa.Array:
    return pa.array((np.asarray(seconds, dtype=np.int64) // DAY).astype(np.int32),
                    type=pa.date32())


def _labels(values: Sequence[str], codes: np.ndarray) -> pa.Array:
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    return pc.take(pa.array(list(values), pa.string()),
                   pa.array(np.maximum(codes, 0), mask=mask if mask.any() else None))


def _ints(values: np.ndarray) -> pa.Array:
    values = np.asarray(values, dtype=np.int64)
    return pa.array(values, mask=values < 0)


_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none")


def _write_csv(
    path: Path, table: str, n_rows: int, chunk: Callable[[slice], dict[str, pa.Array]]
) -> dict[str, int | str]:
    """Write a contract table in chunks (header = the contract's columns, unquoted) and
    return its manifest entry (data rows and sha256 of the file, streamed)."""
    columns = TABLES[table].column_names
    with open(path, "wb") as fh:
        fh.write((",".join(columns) + "\n").encode())
        for start in range(0, n_rows, _CHUNK_ROWS):
            data = chunk(slice(start, min(start + _CHUNK_ROWS, n_rows)))
            pacsv.write_csv(pa.table({col: data[col] for col in columns}), fh, _WRITE_OPTIONS)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return {"rows": n_rows, "sha256": digest.hexdigest()}


def _month_index(seconds: np.ndarray) -> np.ndarray:
    """Months since year 0 (year * 12 + month - 1) of epoch seconds."""
    months = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype(
        "datetime64[M]").astype(np.int64)
    return months + 1970 * 12


def _month_start(ym: int) -> date:
    return date(ym // 12, ym % 12 + 1, 1)


def _write_export(pop: _Population, out_dir: Path, export_date: date) -> Path:
    folder = Path(out_dir) / export_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest_path.unlink(missing_ok=True)  # an export is complete only once this exists
    export_ts = _epoch(export_date)
    files: dict[str, dict[str, int | str]] = {}
    c, o, r, s, e = pop.customers, pop.orders, pop.referrals, pop.surveys, pop.events
    n = len(c["group"])

    def customers(sl: slice) -> dict[str, pa.Array]:
        ids = np.arange(sl.start + 1, sl.stop + 1)
        m = len(ids)
        empty = pa.nulls(m, pa.string())
        return {
            "customer_id": _ids("C", ids),
            "email": _emails(ids),
            "first_name": _labels(_FIRST_NAMES, c["first_name"][sl]),
            "last_name": _labels(_LAST_NAMES, c["last_name"][sl]),
            "phone": pc.binary_join_element_wise(
                "+1555", pc.utf8_lpad(pc.cast(pa.array(c["phone"][sl]), pa.string()), 7,
                                      "0"), ""),
            "signup_date": _dates(c["signup_ts"][sl]),
            "country": _labels(_COUNTRIES, c["country"][sl]),
            "city": _labels(_CITY_NAMES, c["city"][sl]),
            "birth_year": _ints(c["birth_year"][sl]),
            "gender": _labels(_GENDERS, c["gender"][sl]),
            "industry": empty,
            "company_size": empty,
            "acquisition_channel": _labels(ACQUISITION_CHANNELS, c["channel"][sl]),
            "marketing_opt_in": pa.array(c["opt_in"][sl]),
            "updated_at": _ts(c["updated_ts"][sl]),
        }

    def orders(sl: slice) -> dict[str, pa.Array]:
        return {
            "order_id": _ids("O", o["id"][sl]),
            "customer_id": _ids("C", o["cust"][sl].astype(np.int64) + 1),
            "order_date": _ts(o["ts"][sl]),
            "amount": _money(o["amount"][sl]),
            "currency": _labels(CURRENCIES, o["currency"][sl]),
            "status": _labels(ORDER_STATUSES, o["status"][sl]),
            "product_category": _labels(_CATEGORIES, o["category"][sl]),
            "discount_amount": _money(o["discount"][sl]),
            "updated_at": _ts(o["updated_ts"][sl]),
        }

    def referrals(sl: slice) -> dict[str, pa.Array]:
        referee = r["referee"][sl]
        kind = r["email_kind"][sl]
        no_referee = referee < 0
        own = _emails(np.where(no_referee, r["referrer"][sl], referee) + 1)
        friend = pc.binary_join_element_wise(
            "friend", pc.utf8_lpad(pc.cast(pa.array(r["id"][sl]), pa.string()), 6, "0"),
            "@example.org", "")
        upper = _emails(r["referrer"][sl] + 1, upper=True)
        email = pc.if_else(pa.array(kind == 0), own,
                           pc.if_else(pa.array(kind == 2), upper, friend))
        conv = r["converted_ts"][sl]
        return {
            "referral_id": _ids("R", r["id"][sl]),
            "referrer_customer_id": _ids("C", r["referrer"][sl] + 1),
            "referee_email": email,
            "referee_customer_id": _ids("C", referee + 1, mask=no_referee),
            "sent_at": _ts(r["sent_ts"][sl]),
            "channel": _labels(REFERRAL_CHANNELS, r["channel"][sl]),
            "status": _labels(REFERRAL_STATUSES, r["status"][sl]),
            "converted_at": _ts(conv, mask=conv < 0),
            "reward_referrer_amount": _money(r["reward_referrer"][sl],
                                             r["reward_referrer"][sl] < 0),
            "reward_referee_amount": _money(r["reward_referee"][sl],
                                            r["reward_referee"][sl] < 0),
            "reward_currency": pa.array([BASE_CURRENCY] * (sl.stop - sl.start), pa.string()),
            "reward_type": _labels(REWARD_TYPES, r["reward_type"][sl]),
            "updated_at": _ts(r["updated_ts"][sl]),
        }

    def surveys(sl: slice) -> dict[str, pa.Array]:
        return {
            "response_id": _ids("S", s["id"][sl]),
            "customer_id": _ids("C", s["cust"][sl].astype(np.int64) + 1),
            "responded_at": _ts(s["ts"][sl]),
            "nps": _ints(s["nps"][sl]),
            "csat": _ints(s["csat"][sl]),
        }

    def events(sl: slice) -> dict[str, pa.Array]:
        return {
            "event_id": _ids("E", e["id"][sl]),
            "customer_id": _ids("C", e["cust"][sl].astype(np.int64) + 1),
            "occurred_at": _ts(e["ts"][sl]),
            "event_type": _labels(EVENT_TYPES, e["type"][sl]),
        }

    # marketing_spend: 24 months up to the export date; new_customers from the signups
    end_ym = export_date.year * 12 + export_date.month - 1
    months = np.arange(end_ym - 23, end_ym + 1)
    seen = c["signup_ts"] < export_ts
    signup_ym = _month_index(c["signup_ts"][seen])
    chan = c["channel"][seen]
    codes = np.array([_CHANNEL_CODE[ch] for ch in _PAID_CHANNELS])
    counts = np.zeros((len(months), len(codes)), dtype=np.int64)
    in_range = (signup_ym >= months[0]) & (signup_ym <= months[-1])
    for j, code in enumerate(codes):
        sel = in_range & (chan == code)
        counts[:, j] = np.bincount(signup_ym[sel] - months[0], minlength=len(months))
    base = max(1.0, pop.base_customers / 2000)
    spend = np.zeros_like(counts)
    for i, ym in enumerate(months):
        noise = _rng(pop.seed, _S_MARKETING, int(ym)).random((2, len(codes)))
        spend[i] = np.round(100 * _PAID_CAC * (counts[i] * (0.85 + 0.3 * noise[0])
                                                + base * (0.5 + noise[1])))
    n_ms = counts.size

    def marketing(sl: slice) -> dict[str, pa.Array]:
        month_secs = np.array([_epoch(_month_start(int(m))) for m in months])
        return {
            "month": _dates(np.repeat(month_secs, len(codes))),
            "channel": pa.array(list(_PAID_CHANNELS) * len(months), pa.string()),
            "spend": _money(spend.ravel()),
            "new_customers": pa.array(counts.ravel()),
        }

    # referral program fixed costs: every month of the history, plus the month after
    first_ym = int(_month_index(np.array([pop.history_start]))[0])
    cost_months = np.arange(first_ym, end_ym + 2)
    cost = np.array([
        round(100 * (500 + 0.25 * pop.base_customers)
              * (0.9 + 0.2 * _rng(pop.seed, _S_PROGRAM, int(ym)).random()))
        for ym in cost_months
    ], dtype=np.int64)

    def program(sl: slice) -> dict[str, pa.Array]:
        return {
            "month": _dates(np.array([_epoch(_month_start(int(m))) for m in cost_months])),
            "cost": _money(cost),
        }

    def fx(sl: slice) -> dict[str, pa.Array]:
        return {"currency": pa.array(list(FX_RATES)),
                "rate_to_base": pa.array(list(FX_RATES.values()))}

    writers = {
        "customers": (n, customers),
        "orders": (len(o["id"]), orders),
        "referrals": (len(r["id"]), referrals),
        "surveys": (len(s["id"]), surveys),
        "events": (len(e["id"]), events),
        "marketing_spend": (n_ms, marketing),
        "referral_program_costs": (len(cost_months), program),
        "fx_rates": (len(FX_RATES), fx),
    }
    for table in EXPORT_TABLES:
        rows, fn = writers[table]
        files[f"{table}.csv"] = _write_csv(folder / f"{table}.csv", table, rows, fn)

    truth_dir = Path(out_dir) / GROUND_TRUTH_DIR
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth = pa.table({
        "customer_id": _ids("C", np.arange(1, n + 1)),
        "behaviour_group": _labels(BEHAVIOUR_GROUPS, c["group"]),
    })
    with open(truth_dir / f"{export_date.isoformat()}.csv", "wb") as fh:
        fh.write(b"customer_id,behaviour_group\n")
        pacsv.write_csv(truth, fh, _WRITE_OPTIONS)

    manifest = {"mode": "full", "files": files}
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest_path)
    return folder


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def generate_export(
    out_dir: Path, customers: int, seed: int = 42, as_of: date = DEFAULT_AS_OF
) -> Path:
    """Write the full export of `customers` customers dated `as_of` to `out_dir/<as_of>`
    (and the ground truth to `out_dir/_ground_truth/<as_of>.csv`); return the folder."""
    return _write_export(_build_population(customers, seed, as_of), Path(out_dir), as_of)


def generate_next_day(
    out_dir: Path, customers: int, seed: int = 42, as_of: date = DEFAULT_AS_OF
) -> Path:
    """Write the export of the day after `as_of`: the same population as
    `generate_export(out_dir, customers, seed, as_of)` plus one day of small changes
    (new customers, new orders, referrals converting, pending orders completing, a few
    surveys and events).  Returns `out_dir/<as_of + 1 day>`; does not write `as_of`."""
    return generate_series(out_dir, customers, seed, as_of, days=2, write_first=False)[-1]


def generate_series(
    out_dir: Path, customers: int, seed: int = 42, as_of: date = DEFAULT_AS_OF,
    days: int = 1, write_first: bool = True,
) -> list[Path]:
    """Write `days` consecutive full exports: `as_of` (the base population), then one day
    of changes per following date.  Returns the folders written."""
    if days < 1:
        raise ValueError("days must be >= 1")
    pop = _build_population(customers, seed, as_of)
    folders = [_write_export(pop, Path(out_dir), as_of)] if write_first else []
    for i in range(1, days):
        day = as_of + timedelta(days=i - 1)
        _advance_one_day(pop, day, i)
        folders.append(_write_export(pop, Path(out_dir), day + timedelta(days=1)))
    return folders


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sample",
        description="Write synthetic nightly CRM exports (see shared/spec/crm-exports.md).")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("data/exports"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=date.fromisoformat, default=DEFAULT_AS_OF,
                        help="date of the first export (YYYY-MM-DD)")
    parser.add_argument("--days", type=int, default=1,
                        help="consecutive daily exports to write, from --as-of on")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    folders = generate_series(args.out, args.customers, args.seed, args.as_of, args.days)
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        rows = ", ".join(f"{name.removesuffix('.csv')}={entry['rows']}"
                         for name, entry in manifest["files"].items())
        print(f"{folder}: {rows}")
    print(f"done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
