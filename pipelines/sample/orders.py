"""Orders: counts, timing and status by behaviour group, and order values."""

from __future__ import annotations

import numpy as np

from pipelines.sample.dates import DAY, HOUR
from pipelines.sample.draws import S_ORDERS, make_rng, pick_index, trunc_exp
from pipelines.sample.params import (
    ADV,
    BIG,
    CAT_P,
    CAT_P_BIG,
    COUNTRY_CURRENCY,
    FX,
    LOCAL_CURRENCY_P,
    NEW,
    PARAMS,
    PRO,
    REG,
    STATUS,
)
from pipelines.sample.records import with_row_numbers


def order_values(
    rng: np.random.Generator, c: dict[str, np.ndarray], cust: np.ndarray
) -> dict[str, np.ndarray]:
    """Amount, discount (local-currency cents), currency and category of new orders."""
    m = len(cust)
    g = c["group"][cust]
    gross = np.round(c["aov_median"][cust] * rng.lognormal(0.0, 0.4, m) * 100).astype(np.int64)
    gross = np.maximum(gross, 199)
    has_disc = rng.random(m) < PARAMS["discount_p"][g]
    disc = np.where(has_disc, np.round(gross * rng.uniform(0.05, 0.30, m)), 0).astype(np.int64)
    free = rng.random(m) < 0.002  # free / 100 % promo orders: amount 0
    disc = np.where(free, gross, disc)
    amount = gross - disc
    local = COUNTRY_CURRENCY[c["country"][cust]]
    currency = np.where((local > 0) & (rng.random(m) < LOCAL_CURRENCY_P), local, 0)
    rate = FX[currency]
    cat_big = pick_index(rng, CAT_P_BIG, m)
    cat_any = pick_index(rng, CAT_P, m)
    return {
        "amount": np.round(amount / rate).astype(np.int64),
        "discount": np.round(disc / rate).astype(np.int64),
        "currency": currency.astype(np.int8),
        "category": np.where(g == BIG, cat_big, cat_any).astype(np.int8),
    }


def build_orders(
    c: dict[str, np.ndarray], seed: int, as_of_ts: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Orders of the base population; also each customer's first and last order time."""
    rng = make_rng(seed, S_ORDERS)
    g = c["group"]
    n = len(g)
    signup = c["signup_ts"]
    signup_ago = (as_of_ts - signup) / DAY
    # order counts: skewed (negative binomial), by group
    r = 3.0
    k = PARAMS["orders_base"][g] + rng.negative_binomial(r, r / (r + PARAMS["orders_extra"][g]))
    k = np.minimum(k, PARAMS["orders_max"][g]).astype(np.int64)
    pro = g == PRO
    k[pro] = rng.random(int(pro.sum())) < 0.2  # a fifth of prospects: one failed order
    new = g == NEW
    # days since the last order, then the first order shortly after signup
    lo = PARAMS["last_lo"][g]
    last_ago = lo + trunc_exp(rng, PARAMS["last_scale"][g], PARAMS["last_hi"][g] - lo)
    last_ago = np.minimum(last_ago, signup_ago - 10)
    delay = trunc_exp(rng, np.full(n, 7.0), signup_ago - last_ago - 0.01)
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
    refund_p = PARAMS["refund_p"][gg]
    status = np.where(u < refund_p, STATUS["refunded"], STATUS["completed"])
    status = np.where((u >= refund_p) & (u < refund_p + 0.02), STATUS["cancelled"], status)
    recent = ts >= as_of_ts - 3 * DAY
    pend = recent & (rng.random(m) < 0.4) & (~is_last | (np.isin(gg, (ADV, REG)) & (kk >= 2)))
    status = np.where(pend, STATUS["pending"], status)
    # buying customers keep their last order completed unless it is a recent pending one;
    # prospects never complete one
    status = np.where(is_last & (gg != PRO) & ~pend, STATUS["completed"], status)
    pro_status = np.where(u < 0.25, STATUS["refunded"], STATUS["cancelled"])
    status = np.where(gg == PRO, np.where(recent, STATUS["pending"], pro_status), status)
    # safety net: every buying customer has at least one completed order
    done = np.bincount(
        cust, weights=(status == STATUS["completed"]).astype(np.float64), minlength=n
    )
    fix = is_last & (gg != PRO) & (done[cust] == 0)
    status = np.where(fix, STATUS["completed"], status).astype(np.int8)

    upd = ts + rng.integers(60, 2 * HOUR, m)
    upd = np.where(status == STATUS["refunded"], ts + rng.integers(DAY, 30 * DAY, m), upd)
    upd = np.where(status == STATUS["cancelled"], ts + rng.integers(600, DAY, m), upd)
    upd = np.where(status == STATUS["pending"], ts, upd)
    upd = np.minimum(upd, as_of_ts - 1)

    orders = {"cust": cust, "ts": ts, "status": status, "updated_ts": upd}
    orders.update(order_values(rng, c, cust))
    return with_row_numbers(orders), first_ts, last_ts
