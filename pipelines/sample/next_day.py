"""One day of small changes to a population, between two consecutive exports."""

from __future__ import annotations

from datetime import date

import numpy as np

from pipelines.sample.dates import DAY, HOUR, epoch_seconds
from pipelines.sample.draws import S_DAY, make_rng
from pipelines.sample.engagement import survey_scores
from pipelines.sample.orders import order_values
from pipelines.sample.params import (
    ADV,
    CHANNEL_CODE,
    DET,
    EVENT,
    NEW,
    PARAMS,
    PRO,
    REF_STATUS,
    REWARD,
    REWARD_CENTS,
    STATUS,
)
from pipelines.sample.population import Population, customer_attrs
from pipelines.sample.records import append_numbered, concat


def advance_one_day(pop: Population, day: date, day_number: int) -> None:
    """Apply the changes that happen during `day` (the next export is dated day + 1):
    about 0.2 % new customers (some converting an open referral), new orders for ~1.5 %
    of active customers, pending orders completing, expiring invitations, a few new
    surveys and events."""
    rng = make_rng(pop.seed, S_DAY, day_number)
    t0 = epoch_seconds(day)
    t1 = t0 + DAY
    c = pop.customers
    n_old = len(c["group"])

    # invitations sent 30 days ago expire (updated today)
    r = pop.referrals
    expiring = (
        (r["status"] == REF_STATUS["sent"])
        & (r["referee"] < 0)
        & (r["sent_ts"] >= t0 - 30 * DAY)
        & (r["sent_ts"] < t1 - 30 * DAY)
        & (rng.random(len(r["status"])) < 0.9)
    )
    r["status"][expiring] = REF_STATUS["expired"]
    r["updated_ts"][expiring] = r["sent_ts"][expiring] + 30 * DAY

    # new customers sign up today
    k = max(2, round(0.002 * pop.base_customers))
    group = np.where(rng.random(k) < 0.65, NEW, PRO).astype(np.int8)
    signup = t0 + np.sort(rng.integers(0, DAY - 2 * HOUR, k))
    new_c = customer_attrs(rng, group, signup, t1)
    new_c["updated_ts"] = signup.copy()
    new_idx = np.arange(n_old, n_old + k)
    for key in c:
        c[key] = np.concatenate([c[key], new_c[key]])

    # some of them convert an open invitation (double-sided reward)
    open_ref = np.flatnonzero(
        (r["status"] == REF_STATUS["sent"])
        & (r["referee"] < 0)
        & (r["email_kind"] == 1)
        & (r["sent_ts"] >= t0 - 30 * DAY)
    )
    buyers = new_idx[group == NEW]
    n_conv = min(len(open_ref), int(np.ceil(0.4 * len(buyers))))
    conv_ref = np.sort(rng.choice(open_ref, n_conv, replace=False))
    conv_cust = buyers[:n_conv]
    r["status"][conv_ref] = REF_STATUS["converted"]
    r["referee"][conv_ref] = conv_cust
    r["email_kind"][conv_ref] = 0
    r["converted_ts"][conv_ref] = c["signup_ts"][conv_cust]
    r["updated_ts"][conv_ref] = c["signup_ts"][conv_cust]
    credit = r["reward_type"][conv_ref] == REWARD["credit"]
    r["reward_referrer"][conv_ref] = np.where(
        credit, REWARD_CENTS["credit"][0], REWARD_CENTS["discount"][0]
    )
    r["reward_referee"][conv_ref] = np.where(
        credit, REWARD_CENTS["credit"][1], REWARD_CENTS["discount"][1]
    )
    c["channel"][conv_cust] = CHANNEL_CODE["referral"]

    # pending orders complete
    o = pop.orders
    done = (o["status"] == STATUS["pending"]) & (rng.random(len(o["status"])) < 0.6)
    o["status"][done] = STATUS["completed"]
    o["updated_ts"][done] = t0 + rng.integers(0, DAY - 60, int(done.sum()))

    # new orders: every new buyer, plus active existing customers
    g_old = c["group"][:n_old]
    repeat = np.flatnonzero(rng.random(n_old) < PARAMS["next_order_p"][g_old])
    cust = np.concatenate([repeat, buyers]).astype(np.int32)
    ts = np.concatenate(
        [
            t0 + rng.integers(0, DAY - 60, len(repeat)),
            c["signup_ts"][buyers] + rng.integers(300, 2 * HOUR, len(buyers)),
        ]
    )
    status = np.where(rng.random(len(cust)) < 0.05, STATUS["pending"], STATUS["completed"])
    status[len(repeat) :] = STATUS["completed"]
    new_o = {
        "cust": cust,
        "ts": ts,
        "status": status.astype(np.int8),
        "updated_ts": np.minimum(ts + rng.integers(60, HOUR, len(cust)), t1 - 1),
    }
    new_o.update(order_values(rng, c, cust))
    pop.orders = append_numbered(o, new_o)

    # a few survey responses and engagement events
    g_all = c["group"]
    n_all = len(g_all)
    s_cust = np.flatnonzero((rng.random(n_old) < 0.001) & (g_old != PRO)).astype(np.int32)
    nps, csat = survey_scores(rng, g_old[s_cust])
    s_ts = t0 + rng.integers(0, DAY - 60, len(s_cust))
    pop.surveys = append_numbered(
        pop.surveys, {"cust": s_cust, "ts": s_ts, "nps": nps, "csat": csat}
    )

    ev_parts = []
    for etype, p in (
        ("site_visit", PARAMS["next_visit_p"][g_all]),
        ("email_open", PARAMS["next_visit_p"][g_all] * c["opt_in"]),
        ("review_posted", 0.01 * (g_all == ADV)),
        ("social_share", 0.01 * (g_all == ADV)),
        ("support_ticket", 0.01 * (g_all == DET)),
    ):
        who = np.flatnonzero(rng.random(n_all) < p).astype(np.int32)
        ev_parts.append({"cust": who, "type": np.full(len(who), EVENT[etype], np.int8)})
    ev = concat(ev_parts)
    lo = np.maximum(t0, c["signup_ts"][ev["cust"]])
    ev["ts"] = lo + np.floor(rng.random(len(lo)) * (t1 - 60 - lo)).astype(np.int64)
    pop.events = append_numbered(pop.events, ev)
