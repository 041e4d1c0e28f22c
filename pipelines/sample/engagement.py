"""Engagement: survey responses (NPS/CSAT) and events (reviews, shares, tickets, email,
site visits)."""

from __future__ import annotations

import numpy as np

from pipelines.sample.dates import DAY
from pipelines.sample.draws import _S_EVENTS, _S_SURVEYS, _pick_rows, _rng
from pipelines.sample.params import _CSAT_PROBS, _EVENT, _NPS_PROBS, _P, LAP
from pipelines.sample.records import _concat, _numbered


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
    return _numbered({"cust": cust, "ts": ts, "nps": nps, "csat": csat})


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
    return _numbered({"cust": e["cust"], "ts": ts, "type": e["type"]})
