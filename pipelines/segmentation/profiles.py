"""marts.segment_profiles: the profile columns and their per-segment aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Extra marts.segment_profiles columns: output column -> (source column, aggregation).
PROFILE_MEANS: dict[str, tuple[str, str]] = {
    "avg_orders_count": ("orders_count", "mean"),
    "avg_net_revenue": ("net_revenue", "mean"),
    "avg_order_value": ("avg_order_value", "mean"),
    "avg_days_since_last_order": ("days_since_last_order", "mean"),
    "avg_tenure_days": ("tenure_days", "mean"),
    "avg_purchase_days_per_year": ("purchase_days_per_year", "mean"),
    "avg_nps": ("nps_avg", "mean"),
    "avg_csat": ("csat_avg", "mean"),
    "avg_referrals_sent": ("referrals_sent", "mean"),
    "avg_referrals_converted": ("referrals_converted", "mean"),
    "avg_reviews_posted": ("reviews_posted", "mean"),
    "avg_social_shares": ("social_shares", "mean"),
    "avg_refund_rate": ("refund_rate", "mean"),
    "avg_discount_share": ("discount_share", "mean"),
    "promoter_share": ("nps_class", "promoter"),
    "detractor_share": ("nps_class", "detractor"),
    "active_advocate_share": ("advocate_type", "active"),
    "high_churn_risk_share": ("churn_risk", "high"),
}
MEAN_SOURCES = frozenset(src for src, agg in PROFILE_MEANS.values() if agg == "mean")
CATEGORICAL_SOURCES = ("nps_class", "advocate_type", "churn_risk")
PROFILE_COLUMNS = (
    "segment_id",
    "segment_name",
    "customers",
    "share",
    "persona",
    "recommended_incentive",
    *PROFILE_MEANS,
)


def build_profiles(df: pd.DataFrame, seg: pd.Series) -> pd.DataFrame:
    cols = {}
    for out, (src, agg) in PROFILE_MEANS.items():
        if src not in df.columns:
            cols[out] = pd.Series(np.nan, index=df.index)
        elif agg == "mean":
            cols[out] = df[src]
        else:
            cols[out] = (df[src] == agg).astype("float64").where(df[src].notna())
    frame = pd.DataFrame(cols).assign(segment_id=seg.to_numpy())
    prof = frame.groupby("segment_id", sort=True).mean()
    prof.insert(0, "customers", frame.groupby("segment_id", sort=True).size())
    prof["share"] = prof["customers"] / len(df)
    return prof.reset_index()
