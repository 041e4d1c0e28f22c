"""`dbt build` of dbt_project/ against a throw-away warehouse with a hand-made raw dataset.

The dataset is tests/dbt/sample_warehouse.py (as_of = 2026-11-21, the newest export).
Every expected number below is computed by hand from it; the arithmetic is in the comments.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.dbt import invoke_dbt as _dbt
from tests.dbt.sample_warehouse import build_sample_warehouse


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("dbt")
    path = tmp / "warehouse.duckdb"
    build_sample_warehouse(path)
    mp = pytest.MonkeyPatch()
    mp.setenv("DBT_DUCKDB_PATH", str(path))
    mp.delenv("EMAIL_HASH_SALT", raising=False)
    mp.delenv("DBT_VARS", raising=False)
    try:
        _dbt(["build"], tmp)  # models, data tests and unit tests
        yield path, tmp
    finally:
        mp.undo()


def _rows(path: Path, sql: str) -> list[dict]:
    con = duckdb.connect(str(path))  # dbt-duckdb keeps its own in-process handle open
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _features(path: Path) -> dict[str, dict]:
    return {r["customer_id"]: r for r in _rows(path, "select * from marts.customer_features")}


def test_customer_features_by_hand(warehouse):
    path, _ = warehouse
    f = _features(path)
    # C4 asked to be erased (by email ' D@X.com'): gone everywhere.
    assert sorted(f) == ["C1", "C2", "C3", "C5", "C6"]

    c1 = f["C1"]
    # purchase days: 2024-02-01 (O1 100 + O2 50 = 150), 2025-03-01 (O3: newest export's
    # 80 EUR * 1.1 = 88), 2026-10-01 (O5, 0). O4 refunded, O7 cancelled, O6 after as_of.
    assert c1["frequency"] == 2  # 3 purchase days - 1
    assert c1["recency"] == 973  # 2024-02-01 -> 2026-10-01: 366 + 365 + 242
    assert c1["T"] == 1024  # 973 + (2026-10-01 -> 2026-11-21 = 51)
    assert c1["monetary_value"] == Decimal("44.0000")  # (88 + 0) / 2
    assert c1["orders_count"] == 4
    assert c1["net_revenue"] == Decimal("238.0000")  # 150 + 88 + 0
    assert c1["avg_order_value"] == Decimal("59.5000")  # 238 / 4
    assert c1["days_since_last_order"] == 51
    assert c1["refund_rate"] == 0.2  # 1 refunded / (4 completed + 1 refunded)
    assert c1["discount_share"] == 0.040323  # 10 / (238 + 10)
    assert c1["median_gap_days"] == 486.5  # gaps 394 and 579
    assert c1["churn_risk"] == "low"  # 51 <= 486.5
    assert c1["purchase_days_per_year"] == 1.069336  # 3 / 1024 * 365
    assert c1["country"] == "US"  # newest export's version wins over 'CA'
    assert c1["tenure_days"] == 1046  # 2024-01-10 -> 2026-11-21
    # surveys: nps 10 (Jan), 6 (Jun); the 9 of 2026-11-25 is after as_of
    assert (c1["nps_latest"], c1["nps_avg"], c1["csat_avg"]) == (6, 8.0, 5.0)
    assert c1["nps_class"] == "detractor"
    # counted referrals: R1 (attributed) and R5; R2 duplicate, R3 self, R7 after as_of
    assert (c1["referrals_sent"], c1["referrals_converted"]) == (2, 1)
    # review 2026-05-01; shares 2025-11-22 (in) and 2025-11-21 (365 days ago: out)
    assert (c1["reviews_posted"], c1["social_shares"]) == (1, 1)
    assert c1["advocate_type"] == "active"
    # RFM among C1, C2, C5, C6: R (days since 51) = 3, F (4 orders) = 4, M (238) = 3,
    # FM = floor((4 + 3 + 1) / 2) = 4 -> R3 FM4 = Loyal
    assert (c1["rfm_recency_score"], c1["rfm_frequency_score"], c1["rfm_monetary_score"]) == (
        3,
        4,
        3,
    )
    assert c1["rfm_segment"] == "Loyal"

    # C2: referred by C1 (R1); opt-in NULL -> false
    assert (f["C2"]["is_referred"], f["C2"]["referred_by_customer_id"]) == (True, "C1")
    assert f["C2"]["marketing_opt_in"] is False
    assert f["C2"]["advocate_type"] == "passive"  # promoter (nps 9), no activity
    # C3: no completed order -> lifetimes columns NULL; referred by C5 (R6)
    c3 = f["C3"]
    assert (c3["frequency"], c3["recency"], c3["T"], c3["monetary_value"]) == (None,) * 4
    assert (c3["orders_count"], c3["net_revenue"], c3["rfm_segment"]) == (0, Decimal("0"), None)
    assert (c3["is_referred"], c3["referred_by_customer_id"]) == (True, "C5")
    # C5: days 2025-01-10, -20, 02-01: gaps 10, 12 -> median 11; 658 days since > 22 and > 90
    assert (f["C5"]["median_gap_days"], f["C5"]["days_since_last_order"]) == (11.0, 658)
    assert f["C5"]["churn_risk"] == "high"
    # C6: 2026-10-01, 10-21: gap 20; 31 days since > 20 but not > 40 -> medium
    assert f["C6"]["churn_risk"] == "medium"
    assert f["C6"]["referrals_sent"] == 0  # R4 is a self-referral


def test_customer_features_match_lifetimes(warehouse):
    import lifetimes.utils as lifetimes_utils

    path, _ = warehouse
    con = duckdb.connect(str(path))  # dbt-duckdb keeps its own in-process handle open
    try:
        tx = con.execute(
            "select customer_id, order_date, cast(amount_base as double) as amount "
            "from staging.stg_orders where status = 'completed'"
        ).df()
    finally:
        con.close()
    expected = lifetimes_utils.summary_data_from_transaction_data(
        tx,
        "customer_id",
        "order_date",
        monetary_value_col="amount",
        freq="D",
        observation_period_end="2026-11-21",
    )
    f = _features(path)
    for customer_id, row in expected.iterrows():
        got = f[customer_id]
        assert got["frequency"] == row["frequency"]
        assert got["recency"] == row["recency"]
        assert got["T"] == row["T"]
        assert float(got["monetary_value"]) == pytest.approx(row["monetary_value"], abs=5e-5)


def test_referral_roi_by_segment_by_hand(warehouse):
    path, _ = warehouse
    roi = {r["segment_id"]: r for r in _rows(path, "select * from marts.referral_roi_by_segment")}
    assert list(roi) == ["prospects", "seg_a", "seg_b", "all"]
    a, b, p, total = roi["seg_a"], roi["seg_b"], roi["prospects"], roi["all"]
    # seg_a = {C1, C2}: C1 sent R1 (attributed: C2's orders 2025-06-05 10 + 2025-06-10 200
    # in the window; 2026-06-10 is day 370 -> out) and R5.
    assert (a["customers"], a["referrers"], a["share_rate"]) == (2, 1, 0.5)
    assert (a["referrals_sent"], a["referrals_converted"], a["referred_customers"]) == (2, 1, 1)
    assert a["referred_revenue"] == Decimal("210.0000")  # 10 + 200
    assert a["reward_cost"] == Decimal("30.0000")  # 20 + 10
    # program costs up to as_of: Oct 100 + Nov 50 = 150 (Dec 999 excluded); 4 referrals
    # sent in all, 2 by seg_a -> 150 * 2/4 = 75
    assert a["program_cost"] == Decimal("75.0000")
    assert a["total_cost"] == Decimal("105.0000")
    assert a["roi"] == 1.0  # (210 - 105) / 105
    assert a["referral_cac"] == Decimal("105.0000")  # 105 / 1
    # seg_b = {C5, C6}: C5 sent R6 (attributed, reward 15 EUR * 1.1 = 16.5, C3 never
    # bought -> revenue 0) and R9 (referee C4 erased -> sent, not converted)
    assert (b["referrals_sent"], b["referrals_converted"]) == (2, 1)
    assert b["reward_cost"] == Decimal("16.5000")
    assert b["total_cost"] == Decimal("91.5000")  # 16.5 + 75
    assert b["roi"] == -1.0  # (0 - 91.5) / 91.5
    # prospects: nothing sent -> ratios NULL, not 0
    assert p["referral_conversion_rate"] is None and p["roi"] is None
    assert p["referral_cac"] is None and p["share_rate"] == 0.0
    # all: 5 customers, 4 sent, 2 converted, cost 30 + 16.5 + 150 = 196.5
    assert (total["customers"], total["referrals_sent"], total["referrals_converted"]) == (5, 4, 2)
    assert total["total_cost"] == Decimal("196.5000")
    assert total["roi"] == 0.068702  # (210 - 196.5) / 196.5 = 0.0687023
    assert total["referral_cac"] == Decimal("98.2500")  # 196.5 / 2
    # paid CAC: (1000 + 500, newest Nov version) / (10 + 5) = 100 on every row
    assert {r["paid_cac"] for r in roi.values()} == {Decimal("100.0000")}
    # 12-month cohort (first purchase <= 2025-11-21): C1 non-referred 150 (retained by
    # 2025-03-01), C2 referred 210 (retained by 2026-06-10), C5 non-referred 100 (not)
    assert (total["clv_12m_referred"], total["clv_12m_nonreferred"]) == (
        Decimal("210.0000"),
        Decimal("125.0000"),
    )  # (150 + 100) / 2
    assert (total["retention_12m_referred"], total["retention_12m_nonreferred"]) == (1.0, 0.5)
    assert all(r["low_confidence"] for r in roi.values())  # < 30 conversions
    assert {r["as_of_date"] for r in roi.values()} == {dt.date(2026, 11, 21)}


def test_counted_referrals_are_listed_under_their_segment_and_all(warehouse):
    path, _ = warehouse
    rows = _rows(
        path,
        "select segment_id, referral_id, referred_revenue "
        "from intermediate.int_referrals_by_segment",
    )
    # counted: C1's R1 and R5 (seg_a), C5's R6 and R9 (seg_b); R2 duplicate, R3 self
    listed = {(r["segment_id"], r["referral_id"]) for r in rows}
    assert len(rows) == 8
    assert listed == {
        *((s, r) for s in ("seg_a", "all") for r in ("R1", "R5")),
        *((s, r) for s in ("seg_b", "all") for r in ("R6", "R9")),
    }
    # R1's referred revenue (10 + 200) sits on both of its rows
    assert {r["referred_revenue"] for r in rows if r["referral_id"] == "R1"} == {Decimal("210")}


def test_other_marts(warehouse):
    path, _ = warehouse
    top = _rows(path, "select * from marts.top_referrers order by referrer_rank")
    # C1: 1 converted, 210 revenue ranks above C5: 1 converted, 0 revenue
    assert [(r["customer_id"], r["reward_tier"]) for r in top] == [
        ("C1", "bronze"),
        ("C5", "bronze"),
    ]
    moves = [
        tuple(r.values())
        for r in _rows(
            path,
            "select from_segment_id, to_segment_id, customers "
            "from marts.segment_migrations order by 1, 2",
        )
    ]
    # 2026-10-21 -> 2026-11-21: C1 seg_b -> seg_a, C2 stays seg_a, C5 stays seg_b, C3 and C6
    # are new; C4 (erased) is dropped from history
    assert moves == [
        ("(none)", "prospects", 1),
        ("(none)", "seg_b", 1),
        ("seg_a", "seg_a", 1),
        ("seg_b", "seg_a", 1),
        ("seg_b", "seg_b", 1),
    ]
    spells = [
        tuple(r.values())
        for r in _rows(
            path,
            "select customer_id, segment_id, segment_name, valid_from, valid_to, "
            "previous_segment_id, has_changed_segment from marts.segment_history order by 1, 4",
        )
    ]
    # The same two runs as spells: C1 in seg_b from 2026-10-21 until its move to seg_a on
    # 2026-11-21; C2 and C5 stay from 2026-10-21; C3 (prospects: no centroid, named by the
    # dbt var) and C6 arrive on 2026-11-21; C4 (erased) is dropped.
    old, new = dt.date(2026, 10, 21), dt.date(2026, 11, 21)
    assert spells == [
        ("C1", "seg_b", "At risk", old, new, None, False),
        ("C1", "seg_a", "Champion advocates", new, None, "seg_b", True),
        ("C2", "seg_a", "Champion advocates", old, None, None, False),
        ("C3", "prospects", "Prospects", new, None, None, False),
        ("C5", "seg_b", "At risk", old, None, None, False),
        ("C6", "seg_b", "At risk", new, None, None, False),
    ]
    pii = _rows(
        path,
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'marts' and (column_name like '%email%' "
        "or column_name in ('first_name', 'last_name', 'phone'))",
    )
    assert pii == []


def test_rebuild_is_byte_identical(warehouse):
    path, tmp = warehouse
    tables = [
        "marts.customer_features",
        "marts.referral_roi_by_segment",
        "marts.referral_roi_by_segment_monthly",
        "marts.top_referrers",
        "marts.segment_history",
        "marts.segment_migrations",
        "intermediate.int_referral_attribution",
        "intermediate.int_customer_orders",
        "intermediate.int_customer_surveys",
        "intermediate.int_customer_events",
        "intermediate.int_customer_referrals",
        "intermediate.int_referrals_by_segment",
    ]
    before = {t: _rows(path, f"select * from {t}") for t in tables}  # physical order
    _dbt(["run"], tmp)
    after = {t: _rows(path, f"select * from {t}") for t in tables}
    assert before == after
