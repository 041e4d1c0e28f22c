"""Referrals: open invitations, conversions, signed-up prospects, duplicate conversions
and self-referrals, with their double-sided rewards."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.sample.dates import DAY, HOUR
from pipelines.sample.draws import S_REFERRALS, make_rng, pick_index, trunc_exp, weighted_sample
from pipelines.sample.params import (
    ADV,
    NEW,
    PARAMS,
    PRO,
    REF_CHANNEL_P,
    REF_STATUS,
    REG,
    REWARD,
    REWARD_CENTS,
)
from pipelines.sample.records import concat, with_row_numbers


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
        pick = np.where(
            eligible > 0,
            pool[np.floor(u[todo] * eligible).astype(np.int64).clip(0, len(pool) - 1)],
            -1,
        )
        out[todo] = pick
    return out


def build_referrals(
    c: dict[str, np.ndarray], seed: int, as_of_ts: int, history_start: int
) -> dict[str, np.ndarray]:
    rng = make_rng(seed, S_REFERRALS)
    g = c["group"]
    n = len(g)
    signup = c["signup_ts"]
    parts: list[dict[str, np.ndarray]] = []

    # 1. invitations that did not (yet) convert: advocates send many, few others send one
    sender = rng.random(n) < PARAMS["sender_p"][g]
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
        np.where(u < 0.9, REF_STATUS["sent"], REF_STATUS["rejected"]),
        np.where(
            u < 0.85,
            REF_STATUS["expired"],
            np.where(u < 0.93, REF_STATUS["rejected"], REF_STATUS["sent"]),
        ),
    )
    parts.append(_referral_rows(len(who), who, sent, st))

    adv_pool = np.flatnonzero(g == ADV)
    other_pool = np.flatnonzero(sender & (g != ADV))
    adv_first = signup[adv_pool[0]] if len(adv_pool) else as_of_ts

    # 2. converted: referees are real customers whose signup is the conversion time
    weights = PARAMS["referee_w"][g] * (
        signup >= max(history_start + 45 * DAY, adv_first + 3 * DAY)
    )
    referee = weighted_sample(rng, weights, round(0.08 * n))
    conv = signup[referee]
    gap = 0.1 + trunc_exp(rng, np.full(len(referee), 5.0), np.full(len(referee), 40.0))
    sent = conv - np.round(gap * DAY).astype(np.int64)
    choice = (rng.random(len(referee)) < 0.10).astype(np.int8)  # 10 % by other senders
    referrer = _choose_referrers(rng, (adv_pool, other_pool), signup, sent, choice)
    ok = referrer >= 0
    referee, conv, sent, referrer = referee[ok], conv[ok], sent[ok], referrer[ok]
    kind = (rng.random(len(referee)) < 0.08).astype(np.int8)  # 8 % used another address
    converted = _referral_rows(
        len(referee),
        referrer,
        sent,
        REF_STATUS["converted"],
        referee=referee,
        converted=conv,
        email_kind=kind,
    )
    parts.append(converted)

    # 3. signed up but never bought: a third of the prospects came through a referral
    cand = np.flatnonzero(
        (g == PRO) & (signup >= adv_first + 3 * DAY) & (signup >= history_start + 45 * DAY)
    )
    pros = cand[rng.random(len(cand)) < 0.3]
    p_sent = signup[pros] - np.round(
        (0.1 + trunc_exp(rng, np.full(len(pros), 5.0), np.full(len(pros), 40.0))) * DAY
    ).astype(np.int64)
    p_ref = _choose_referrers(rng, (adv_pool,), signup, p_sent, np.zeros(len(pros), dtype=np.int8))
    ok = p_ref >= 0
    signed = _referral_rows(
        int(ok.sum()),
        p_ref[ok],
        p_sent[ok],
        REF_STATUS["signed_up"],
        referee=pros[ok],
        email_kind=0,
    )
    parts.append(signed)

    # 4. duplicate conversions: a second converted referral for the same referee
    n_conv = len(converted["referee"])
    n_dup = min(n_conv, max(2, round(0.002 * n_conv)))
    d = np.sort(rng.choice(n_conv, n_dup, replace=False)) if n_dup else np.zeros(0, int)
    d_sent = converted["sent_ts"][d] - rng.integers(0, 5 * DAY, len(d))
    d_ref = _choose_referrers(rng, (adv_pool,), signup, d_sent, np.zeros(len(d), dtype=np.int8))
    clash = d_ref == converted["referrer"][d]
    d_ref = np.where(clash, np.roll(d_ref, 1), d_ref)  # another advocate
    ok = (
        (d_ref >= 0)
        & (d_ref != converted["referrer"][d])
        & (signup[np.maximum(d_ref, 0)] < d_sent - DAY)
    )
    d, d_ref, d_sent = d[ok], d_ref[ok], d_sent[ok]
    same_time = np.arange(len(d)) % 2 == 0  # half tie on converted_at (-> referral_id)
    d_conv = converted["converted_ts"][d] + np.where(
        same_time, 0, rng.integers(HOUR, 3 * DAY, len(d))
    )
    d_conv = np.minimum(d_conv, as_of_ts - 60)
    parts.append(
        _referral_rows(
            len(d),
            d_ref,
            d_sent,
            REF_STATUS["converted"],
            referee=converted["referee"][d],
            converted=d_conv,
            email_kind=0,
        )
    )

    # 5. self-referrals: referee = referrer, or the referrer's own email (other case)
    total = sum(len(p["referrer"]) for p in parts)
    n_self = max(2, round(0.001 * total))
    if len(adv_pool):
        s_who = np.sort(rng.choice(adv_pool, n_self, replace=len(adv_pool) < n_self))
        s_lo = np.maximum(signup[s_who] + DAY, as_of_ts - 365 * DAY)
        s_sent = s_lo + np.floor(rng.random(n_self) * (as_of_ts - 3 * DAY - s_lo)).astype(np.int64)
        half = (n_self + 1) // 2
        a = slice(0, half)
        parts.append(
            _referral_rows(
                half,
                s_who[a],
                s_sent[a],
                REF_STATUS["converted"],
                referee=s_who[a],
                converted=s_sent[a] + rng.integers(HOUR, 2 * DAY, half),
                email_kind=0,
            )
        )
        b = slice(half, n_self)
        b_age = as_of_ts - s_sent[b]
        b_status = np.where(b_age < 30 * DAY, REF_STATUS["sent"], REF_STATUS["expired"])
        parts.append(_referral_rows(n_self - half, s_who[b], s_sent[b], b_status, email_kind=2))

    refs = concat(parts)
    m = len(refs["referrer"])
    refs["channel"] = pick_index(rng, REF_CHANNEL_P, m).astype(np.int8)
    conv_mask = refs["status"] == REF_STATUS["converted"]
    disc = rng.random(m) < 0.15
    refs["reward_type"] = np.where(disc, REWARD["discount"], REWARD["credit"]).astype(np.int8)
    refs["reward_referrer"] = np.where(
        conv_mask, np.where(disc, REWARD_CENTS["discount"][0], REWARD_CENTS["credit"][0]), -1
    ).astype(np.int64)
    refs["reward_referee"] = np.where(
        conv_mask, np.where(disc, REWARD_CENTS["discount"][1], REWARD_CENTS["credit"][1]), -1
    ).astype(np.int64)
    st = refs["status"]
    upd = refs["sent_ts"].copy()
    upd = np.where(conv_mask, refs["converted_ts"], upd)
    upd = np.where(st == REF_STATUS["expired"], refs["sent_ts"] + 30 * DAY, upd)
    upd = np.where(
        st == REF_STATUS["rejected"], refs["sent_ts"] + rng.integers(HOUR, 5 * DAY, m), upd
    )
    signed_mask = st == REF_STATUS["signed_up"]
    upd = np.where(signed_mask, signup[np.maximum(refs["referee"], 0)], upd)
    refs["updated_ts"] = np.minimum(upd, as_of_ts - 1)
    return with_row_numbers(refs, key="sent_ts")
