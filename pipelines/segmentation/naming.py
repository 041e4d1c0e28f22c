"""Segment names (archetype rules, disambiguation), personas and recommended incentives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.segmentation.config import PROSPECTS_ID, ROUND

INCENTIVES = {
    "detractor": "Fix the experience first (service recovery, follow up on complaints); "
    "do not solicit referrals",
    "at_risk": "Win-back offer (personal discount on the next order) before any referral ask",
    "new": "Double-sided welcome credit: the customer and the invited friend both get credit",
    "advocate": "Tiered referral rewards and VIP status",
    "premium": "Upgrade or exclusive early access as the referral reward, not a discount",
    "loyal": "Double-sided referral reward with a personal ask after a purchase; "
    "path to the VIP tier",
    "price": "Discount-based double-sided referral reward (percentage off for both sides)",
    "occasional": "Small double-sided discount code to share, sent after the next purchase",
    "prospect": "Double-sided welcome credit on the first order",
}
FEATURE_LABELS = {
    "orders_count": "order count",
    "net_revenue": "revenue",
    "avg_order_value": "order value",
    "days_since_last_order": "days since last order",
    "tenure_days": "tenure",
    "purchase_days_per_year": "purchase rate",
    "nps_avg": "NPS",
    "csat_avg": "CSAT",
    "referrals_sent": "referrals",
    "reviews_posted": "reviews",
    "social_shares": "shares",
    "refund_rate": "refunds",
    "discount_share": "discount use",
}


def archetype_of(z: dict, o: dict) -> tuple[str, str]:
    """(name, incentive key) from a centroid: z = standardised, o = original units."""

    def zf(f):
        return z.get(f, 0.0)

    advocacy = np.mean([zf(f) for f in ("referrals_sent", "reviews_posted", "social_shares")])
    value = np.mean([zf("orders_count"), zf("net_revenue")])
    detractor = "nps_avg" in o and o["nps_avg"] < 7.0
    lapsed = zf("days_since_last_order") >= 0.75 and o.get("days_since_last_order", 999) >= 90
    if detractor and lapsed:
        return "Dormant detractors", "detractor"
    if detractor:
        return "Unhappy detractors", "detractor"
    if zf("tenure_days") <= -0.75 and value <= 0.25:
        return "New customers", "new"
    if lapsed:
        return ("At risk", "at_risk") if value >= 0 else ("Lapsed", "at_risk")
    if advocacy >= 0.5:
        return ("Champion advocates" if value >= 0.25 else "Active advocates"), "advocate"
    if zf("avg_order_value") >= 0.75:
        return ("Big spenders, quiet" if advocacy <= 0 else "Big spenders"), "premium"
    if value >= 0.5:
        return "Loyal regulars", "loyal"
    if zf("discount_share") >= 0.75:
        return "Bargain hunters", "price"
    return "Occasional buyers", "occasional"


def unique_names(names: list[str], z: np.ndarray, features: tuple[str, ...]) -> list[str]:
    """Disambiguate equal names by the most distinguishing feature, then by a number."""
    out = list(names)
    for name in sorted(set(names)):
        idx = [i for i, n in enumerate(names) if n == name]
        if len(idx) < 2:
            continue
        dev = z[idx] - z[idx].mean(axis=0)
        for row, i in enumerate(idx):
            j = int(np.argmax(np.abs(dev[row]).round(ROUND)))
            label = FEATURE_LABELS.get(features[j], features[j])
            out[i] = f"{name} ({'high' if dev[row, j] > 0 else 'low'} {label})"
    seen: dict[str, int] = {}
    for i, n in enumerate(out):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            out[i] = f"{n} {seen[n]}"
    return out


def _fmt(x: float, spec: str) -> str:
    return "n/a" if x is None or pd.isna(x) else format(x, spec)


def persona_for(p: dict) -> str:
    head = f"{p['customers']:,} customers ({p['share']:.1%})"
    if p["segment_id"] == PROSPECTS_ID:
        return (
            f"{head} who signed up {_fmt(p['avg_tenure_days'], ',.0f')} days ago on "
            "average and have not completed an order yet."
        )
    return (
        f"{head} with {_fmt(p['avg_orders_count'], ',.1f')} orders and "
        f"{_fmt(p['avg_net_revenue'], ',.0f')} net revenue on average "
        f"({_fmt(p['avg_order_value'], ',.0f')} per order), last order "
        f"{_fmt(p['avg_days_since_last_order'], ',.0f')} days ago, customers for "
        f"{_fmt(p['avg_tenure_days'], ',.0f')} days, NPS {_fmt(p['avg_nps'], '.1f')}, "
        f"{_fmt(p['avg_referrals_sent'], '.1f')} referrals sent in the last year."
    )
