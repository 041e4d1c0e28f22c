"""Engagement: survey responses (NPS/CSAT) and events (reviews, shares, tickets, email,
site visits)."""

from __future__ import annotations

import numpy as np

from pipelines.sample.dates import DAY
from pipelines.sample.draws import S_EVENTS, S_SURVEYS, make_rng, pick_rows
from pipelines.sample.params import CSAT_PROBS, EVENT, LAP, NPS_PROBS, PARAMS
from pipelines.sample.records import concat, with_row_numbers


def survey_scores(rng: np.random.Generator, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = len(g)
    nps = pick_rows(rng, np.cumsum(NPS_PROBS, axis=1)[g]).astype(np.int8)
    csat = (1 + pick_rows(rng, np.cumsum(CSAT_PROBS, axis=1)[g])).astype(np.int8)
    u = rng.random(m)
    nps[u < 0.15] = -1  # only csat
    csat[(u >= 0.15) & (u < 0.30)] = -1  # only nps
    return nps, csat


def build_surveys(
    c: dict[str, np.ndarray],
    seed: int,
    as_of_ts: int,
    first_ts: np.ndarray,
    last_ts: np.ndarray,
    has_order: np.ndarray,
) -> dict[str, np.ndarray]:
    rng = make_rng(seed, S_SURVEYS)
    g = c["group"]
    n = len(g)
    k = (rng.random(n) < PARAMS["survey_p"][g]) * (1 + rng.poisson(PARAMS["survey_extra"][g]))
    cust = np.repeat(np.arange(n, dtype=np.int32), k)
    lo = np.where(has_order, first_ts, c["signup_ts"])[cust]
    hi = np.where(has_order, np.minimum(last_ts + 30 * DAY, as_of_ts - 60), as_of_ts - 60)
    hi = np.maximum(hi[cust], lo + 1)
    ts = np.minimum(
        lo + np.floor(rng.random(len(cust)) * (hi - lo)).astype(np.int64), as_of_ts - 60
    )
    nps, csat = survey_scores(rng, g[cust])
    return with_row_numbers({"cust": cust, "ts": ts, "nps": nps, "csat": csat})


def build_events(
    c: dict[str, np.ndarray],
    seed: int,
    as_of_ts: int,
    first_ts: np.ndarray,
    last_ts: np.ndarray,
    has_order: np.ndarray,
) -> dict[str, np.ndarray]:
    rng = make_rng(seed, S_EVENTS)
    g = c["group"]
    n = len(g)
    signup = c["signup_ts"]
    year_ago = as_of_ts - 365 * DAY
    start_any = np.maximum(signup, year_ago)
    start_buyer = np.maximum(np.where(has_order, first_ts, signup), year_ago)
    opt = c["opt_in"]
    plan = [  # (event type, count per customer, window start)
        (
            "review_posted",
            PARAMS["review_base"][g] + rng.poisson(PARAMS["review_lam"][g]),
            start_buyer,
        ),
        (
            "social_share",
            PARAMS["share_base"][g] + rng.poisson(PARAMS["share_lam"][g]),
            start_buyer,
        ),
        (
            "support_ticket",
            PARAMS["ticket_base"][g] + rng.poisson(PARAMS["ticket_lam"][g]),
            start_any,
        ),
        ("email_open", opt * rng.poisson(PARAMS["open_lam"][g]), start_any),
        ("email_click", opt * rng.poisson(PARAMS["click_lam"][g]), start_any),
        ("site_visit", rng.poisson(PARAMS["visit_lam"][g]), start_any),
    ]
    parts = []
    for etype, k, lo_c in plan:
        k = k.astype(np.int64)
        cust = np.repeat(np.arange(n, dtype=np.int32), k)
        parts.append(
            {
                "cust": cust,
                "type": np.full(len(cust), EVENT[etype], np.int8),
                "lo": lo_c[cust],
                "hi": np.full(len(cust), as_of_ts - 60),
            }
        )
    # lapsed customers reviewed while they were active (outside the 365-day window)
    k = ((g == LAP) & has_order) * rng.poisson(0.3, n)
    cust = np.repeat(np.arange(n, dtype=np.int32), k)
    parts.append(
        {
            "cust": cust,
            "type": np.full(len(cust), EVENT["review_posted"], np.int8),
            "lo": first_ts[cust],
            "hi": last_ts[cust] + DAY,
        }
    )
    e = concat(parts)
    span = np.maximum(e["hi"] - e["lo"], 1)
    ts = np.minimum(
        e["lo"] + np.floor(rng.random(len(span)) * span).astype(np.int64), as_of_ts - 60
    )
    return with_row_numbers({"cust": e["cust"], "ts": ts, "type": e["type"]})
