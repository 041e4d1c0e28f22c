"""Compact GX frames (pipelines.quality.compact_frame) give the outcome of the whole frame.

The asset checks validate only the rows that may break an expectation when a table is
large; here the threshold is forced to 0 and every outcome is compared with GX on the
whole frame, on clean data and on data that breaks every kind of rule.  No timing here.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines import quality
from tests.test_quality import EXPORT, insert, load_clean

BAD = {
    "customers": [
        {
            "customer_id": "C1",
            "signup_date": "2026-12-01",
            "birth_year": 1800,
            "acquisition_channel": "carrier_pigeon",
        },
        {"customer_id": None, "signup_date": None},
    ],
    "orders": [
        {"order_id": "O2", "customer_id": "C1", "order_date": "2026-11-03", "amount": 3},
        {
            "order_id": "O8",
            "customer_id": "C404",
            "order_date": "2026-11-22 00:30:00",
            "amount": -1,
            "currency": "usd",
            "status": "lost",
            "discount_amount": -2,
        },
        {"order_id": None, "customer_id": None, "order_date": None, "amount": None},
        {
            "order_id": "O9",
            "customer_id": "C1",
            "order_date": "2026-11-03",
            "amount": 3,
            "currency": "EURO",
        },
    ],
    "referrals": [
        {
            "referral_id": "R9",
            "referrer_customer_id": "C1",
            "sent_at": "2026-11-01",
            "status": "converted",
        },
        {
            "referral_id": "R1",
            "referrer_customer_id": "C77",
            "sent_at": "2027-01-01",
            "status": "nope",
            "channel": "fax",
            "reward_referrer_amount": -5,
        },
    ],
    "surveys": [
        {"response_id": "S9", "customer_id": "C1", "responded_at": "2026-11-01"},
        {
            "response_id": "S8",
            "customer_id": "C1",
            "responded_at": "2026-11-01",
            "nps": 11,
            "csat": 0,
        },
    ],
    "events": [
        {"event_id": "E1", "customer_id": "C1", "occurred_at": "2026-11-05", "event_type": "dance"},
        {"event_id": None, "customer_id": "C5", "occurred_at": "2027-11-05", "event_type": None},
    ],
    "marketing_spend": [
        {"month": "2026-10-01", "channel": "email", "spend": -1, "new_customers": -3},
        {"month": "2026-10-15", "channel": "tv", "spend": 1, "new_customers": 1},
    ],
    "referral_program_costs": [{"month": "2026-10-15", "cost": -1}],
    "fx_rates": [{"currency": "EUR", "rate_to_base": 0}, {"currency": "gbp", "rate_to_base": 1.2}],
}


def _outcomes(con, table):
    full = quality.validate_frame(f"raw_{table}", quality.frame_for_raw_check(con, table, EXPORT))
    frame = quality.raw_check_frame(con, table, EXPORT, min_rows=0)
    compact = quality.validate_frame(
        f"raw_{table}", frame.df, element_count=frame.rows if frame.compact else None
    )
    return full, compact, frame


@pytest.mark.parametrize("broken", [False, True])
@pytest.mark.parametrize("table", quality.RAW_TABLES)
def test_compact_raw_frame_gives_the_whole_frames_outcome(table, broken):
    con = duckdb.connect()
    load_clean(con)
    if broken:
        insert(con, table, BAD[table], EXPORT)
    full, compact, frame = _outcomes(con, table)
    assert compact.to_dict() == full.to_dict()
    assert broken or len(frame.df) == 0 or not frame.compact
    if broken:
        assert not full.success


def _features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = quality.suite_columns("marts_customer_features")
    df = pd.DataFrame({c: rng.uniform(0, 1, n) for c in cols})
    df["customer_id"] = [f"C{i:05d}" for i in range(n)]
    for c in ("rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score"):
        df[c] = rng.integers(1, 6, n)
    df["T"], df["recency"], df["csat_avg"] = 10.0, 5.0, 3.0
    df["referrals_sent"] = df["referrals_converted"] + 1
    df["rfm_segment"] = "Champions"
    df["nps_class"] = rng.choice(["promoter", "passive", "detractor", None], n)
    df["advocate_type"] = "none"
    df["churn_risk"] = "low"
    df["is_referred"] = False
    df["referred_by_customer_id"] = None
    return df


@pytest.mark.parametrize("broken", [False, True])
def test_compact_mart_frame_gives_the_whole_frames_outcome(broken):
    df = _features(500, 3)
    if broken:
        df.loc[7, "customer_id"] = df.loc[3, "customer_id"]
        df.loc[11, "refund_rate"] = 1.5
        df.loc[12, "nps_avg"] = np.nan
        df.loc[13, "recency"] = 11.0
        df.loc[14, "rfm_segment"] = "Sleepy"
        df.loc[15, "churn_risk"] = None
        df.loc[16, "rfm_monetary_score"] = 6
        df.loc[17, "customer_id"] = None
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.register("src", df)
    con.execute("CREATE TABLE marts.customer_features AS SELECT * FROM src")
    full = quality.validate_frame(
        "marts_customer_features", quality.frame_for_mart_check(con, "customer_features")
    )
    frame = quality.mart_check_frame(con, "customer_features", min_rows=0)
    assert frame.compact and len(frame.df) < len(df)
    compact = quality.validate_frame("marts_customer_features", frame.df, element_count=frame.rows)
    assert compact.to_dict() == full.to_dict()
    assert full.success != broken


def test_untranslatable_suite_uses_the_whole_frame():
    con = duckdb.connect()
    load_clean(con)
    frame = quality.raw_check_frame(con, "marketing_spend", dt.date(2026, 11, 21), min_rows=0)
    assert not frame.compact  # expect_compound_columns_to_be_unique has no translation
