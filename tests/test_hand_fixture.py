"""The whole nightly job on an 8-customer export whose every output was computed by hand.

Fixture: tests/fixtures/hand_export/2026-11-21 (as_of = 2026-11-21).  Day counts below are
calendar-day differences, e.g. 2025-02-01 -> 2026-10-22 = 628 days.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.pipeline_runner import copy_night

NA = None


@pytest.fixture(scope="module")
def warehouse(hand_night, tmp_path_factory) -> Path:
    """The hand fixture's night (run once per session, tests/conftest.py), in a copy."""
    return copy_night(hand_night, tmp_path_factory.mktemp("hand"))


def rows(warehouse: Path, table: str, columns: list[str], order_by: str = "customer_id"):
    """{key: (other columns...)} with DuckDB's own Python values (Decimal stays Decimal)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        fetched = con.execute(f"SELECT {cols} FROM marts.{table} ORDER BY {order_by}").fetchall()
    finally:
        con.close()
    return {r[0]: tuple(r[1:]) for r in fetched}


def test_lifetimes_columns(warehouse):
    got = rows(
        warehouse,
        "customer_features",
        ["customer_id", "frequency", "recency", "T", "monetary_value"],
    )
    assert got == {
        # purchase days 02-01 (100+50 same day), 06-01 (80), 2026-10-22 (120); refund ignored
        # recency 2025-02-01..2026-10-22 = 628, T 2025-02-01..2026-11-21 = 658, (80+120)/2
        "001": (2, 628, 658, Decimal("100")),
        # 60, 60, 90 on three days (the cancelled 30 ignored): (60+90)/2 = 75
        "002": (2, 638, 649, Decimal("75")),
        # 200, 0 (zero-amount order still a purchase day), 300: (0+300)/2 = 150
        "003": (2, 183, 599, Decimal("150")),
        "004": (1, 264, 619, Decimal("30")),
        "005": (1, 387, 560, Decimal("60")),
        "006": (0, 0, 51, Decimal("0")),  # one purchase day: monetary 0
        "007": (1, 15, 685, Decimal("300")),  # pending order ignored
        "008": (NA, NA, NA, NA),  # no completed order
    }


def test_rfm_columns(warehouse):
    got = rows(
        warehouse,
        "customer_features",
        [
            "customer_id",
            "days_since_last_order",
            "orders_count",
            "net_revenue",
            "avg_order_value",
            "rfm_recency_score",
            "rfm_frequency_score",
            "rfm_monetary_score",
            "rfm_segment",
        ],
    )
    # ntile(5) over the 7 buyers gives buckets of 2,2,1,1,1.
    # recency (days since desc): 007 670, 003 416 | 004 355, 005 173 | 006 | 001 | 002
    # frequency (orders asc, id): 006 1, 004 2 | 005 2, 007 2 | 002 3 | 003 3 | 001 4
    # monetary (revenue asc, id): 006 25, 004 100 | 005 100, 002 210 | 001 | 003 | 007
    assert got == {
        "001": (30, 4, Decimal("350"), Decimal("87.5"), 4, 5, 3, "Loyal"),
        "002": (11, 3, Decimal("210"), Decimal("70"), 5, 3, 2, "Potential loyalist"),
        "003": (416, 3, Decimal("500"), Decimal("166.6667"), 1, 4, 4, "At risk"),
        "004": (355, 2, Decimal("100"), Decimal("50"), 2, 1, 1, "Hibernating"),
        "005": (173, 2, Decimal("100"), Decimal("50"), 2, 2, 2, "Hibernating"),
        "006": (51, 1, Decimal("25"), Decimal("25"), 3, 1, 1, "About to sleep"),
        "007": (670, 2, Decimal("800"), Decimal("400"), 1, 2, 5, "At risk"),
        "008": (NA, 0, Decimal("0"), NA, NA, NA, NA, NA),
    }


def test_loyalty_advocacy_and_churn_columns(warehouse):
    got = rows(
        warehouse,
        "customer_features",
        [
            "customer_id",
            "purchase_days_per_year",
            "nps_latest",
            "nps_avg",
            "csat_avg",
            "nps_class",
            "referrals_sent",
            "referrals_converted",
            "reviews_posted",
            "social_shares",
            "advocate_type",
            "tenure_days",
            "is_referred",
            "referred_by_customer_id",
            "refund_rate",
            "discount_share",
            "median_gap_days",
            "churn_risk",
        ],
    )
    assert got == {
        # 3*365/658; nps 9 then 10; R001 is a self-referral so sent = R002, R003;
        # review and share within 365 days; 1 refunded / (4 completed + 1 refunded);
        # discount 10 / (350 + 10); gaps 120, 508 -> median 314; 30 <= 314 -> low
        "001": (
            1.664134,
            10,
            9.5,
            5.0,
            "promoter",
            2,
            1,
            1,
            1,
            "active",
            680,
            False,
            NA,
            0.2,
            0.027778,
            314.0,
            "low",
        ),
        # R004 is a duplicate conversion of 004 (R003 converted earlier) -> only R005 counts
        "002": (
            1.687211,
            7,
            7.0,
            4.0,
            "passive",
            1,
            1,
            0,
            1,
            "active",
            670,
            False,
            NA,
            0.0,
            0.023256,
            319.0,
            "low",
        ),
        # review E3 (2025-10-10) is older than 365 days; gaps 14, 169 -> 91.5;
        # 416 > 2*91.5 and > 90 -> high; csat 2 -> not passive
        "003": (
            1.828047,
            3,
            3.0,
            2.0,
            "detractor",
            1,
            0,
            0,
            0,
            "none",
            630,
            False,
            NA,
            0.0,
            0.0,
            91.5,
            "high",
        ),
        # referred by 001 (R003 converted 2025-03-12, before R004 of 2025-03-20);
        # gap 264; 355 > 264 but not > 528 -> medium
        "004": (
            1.179321,
            NA,
            NA,
            NA,
            NA,
            0,
            0,
            0,
            0,
            "none",
            621,
            True,
            "001",
            0.0,
            0.0,
            264.0,
            "medium",
        ),
        "005": (
            1.303571,
            NA,
            NA,
            NA,
            NA,
            0,
            0,
            0,
            0,
            "none",
            569,
            True,
            "002",
            0.0,
            0.0,
            387.0,
            "low",
        ),
        # 1*365/51; one purchase day: no gap, frequency 0 -> low
        "006": (7.156863, NA, NA, NA, NA, 0, 0, 0, 0, "none", 81, False, NA, 0.0, 0.0, NA, "low"),
        # R007 to GUS@example.com is a self-referral by normalised email
        "007": (
            1.065693,
            NA,
            NA,
            3.0,
            NA,
            0,
            0,
            0,
            0,
            "none",
            720,
            False,
            NA,
            0.0,
            0.0,
            15.0,
            "high",
        ),
        "008": (NA, NA, NA, NA, NA, 0, 0, 0, 0, "none", 20, False, NA, NA, NA, NA, "low"),
    }


def test_customer_segments(warehouse):
    got = rows(warehouse, "customer_segments", ["customer_id", "segment_id", "segment_name"])
    # 008 has no completed order -> prospects.  The 7 buyers are clustered (k by silhouette):
    # the two lapsed buyers (670 and 416 days, one a detractor) together, the two referred
    # one-time-ish buyers together, the newest buyer alone, the two advocates apart.
    # First-run ids go by cluster size, then centroid.
    assert got == {
        "001": ("S05", "Champion advocates (high reviews)"),
        "002": ("S04", "Champion advocates (low reviews)"),
        "003": ("S02", "Dormant detractors"),
        "004": ("S01", "Occasional buyers"),
        "005": ("S01", "Occasional buyers"),
        "006": ("S03", "New customers"),
        "007": ("S02", "Dormant detractors"),
        "008": ("prospects", "Prospects"),
    }


def test_referral_roi_by_segment(warehouse):
    got = rows(
        warehouse,
        "referral_roi_by_segment",
        [
            "segment_id",
            "customers",
            "referrers",
            "share_rate",
            "referrals_sent",
            "referrals_converted",
            "referral_conversion_rate",
            "referred_customers",
            "referred_revenue",
            "reward_cost",
            "program_cost",
            "total_cost",
            "roi",
            "referral_cac",
            "paid_cac",
            "clv_12m_referred",
            "clv_12m_nonreferred",
            "retention_12m_referred",
            "retention_12m_nonreferred",
            "low_confidence",
        ],
        order_by="segment_id",
    )
    d = Decimal
    # Counted referrals: R002, R003 (001), R005 (002), R006 (003) = 4; attributed: R003, R005.
    # Program cost = 100 + 50 (the 999 of 2026-12 is after as_of), split by referrals_sent.
    # paid_cac = (1000 + 500) / (10 + 5) = 100 (the 2026-12 row is after as_of).
    # CLV/retention cohort: first purchase <= 2025-11-21 (006 is too recent).
    assert got == {
        # 004 + 005: both referred; CLV (70+30, 40) -> 70; 005 ordered again after a year
        "S01": (
            2,
            0,
            0.0,
            0,
            0,
            NA,
            0,
            d("0"),
            d("0"),
            d("0"),
            d("0"),
            NA,
            NA,
            d("100"),
            d("70"),
            NA,
            0.5,
            NA,
            True,
        ),
        # 003 + 007: R006 expired; program 150*1/4 = 37.5; roi (0-37.5)/37.5 = -1;
        # CLV (500, 800) -> 650; neither bought after their first year
        "S02": (
            2,
            1,
            0.5,
            1,
            0,
            0.0,
            0,
            d("0"),
            d("0"),
            d("37.5"),
            d("37.5"),
            -1.0,
            NA,
            d("100"),
            NA,
            d("650"),
            NA,
            0.0,
            True,
        ),
        # 006: first purchase 2026-10-01, outside the 12-month cohort
        "S03": (
            1,
            0,
            0.0,
            0,
            0,
            NA,
            0,
            d("0"),
            d("0"),
            d("0"),
            d("0"),
            NA,
            NA,
            d("100"),
            NA,
            NA,
            NA,
            NA,
            True,
        ),
        # 002: R005 -> 005 revenue in [2025-05-01, 2026-05-01): 40 (the 60 of 2026-06 is out)
        # reward 20+10; cost 30 + 37.5 = 67.5; roi (40-67.5)/67.5 = -0.407407; CLV 60+60
        "S04": (
            1,
            1,
            1.0,
            1,
            1,
            1.0,
            1,
            d("40"),
            d("30"),
            d("37.5"),
            d("67.5"),
            -0.407407,
            d("67.5"),
            d("100"),
            NA,
            d("120"),
            NA,
            1.0,
            True,
        ),
        # 001: R002 + R003 -> 004 revenue 70 + 30 = 100; cost 30 + 75; roi -5/105; CLV 150+80
        "S05": (
            1,
            1,
            1.0,
            2,
            1,
            0.5,
            1,
            d("100"),
            d("30"),
            d("75"),
            d("105"),
            -0.047619,
            d("105"),
            d("100"),
            NA,
            d("230"),
            NA,
            1.0,
            True,
        ),
        # all: 3 referrers of 8; revenue 140; cost 60 + 150 = 210; roi (140-210)/210;
        # CLV referred (100+40)/2, non-referred (230+120+500+800)/4; retention 1/2 and 2/4
        "all": (
            8,
            3,
            0.375,
            4,
            2,
            0.5,
            2,
            d("140"),
            d("60"),
            d("150"),
            d("210"),
            -0.333333,
            d("105"),
            d("100"),
            d("70"),
            d("412.5"),
            0.5,
            0.5,
            True,
        ),
        "prospects": (
            1,
            0,
            0.0,
            0,
            0,
            NA,
            0,
            d("0"),
            d("0"),
            d("0"),
            d("0"),
            NA,
            NA,
            d("100"),
            NA,
            NA,
            NA,
            NA,
            True,
        ),
    }


def test_no_personal_data_in_any_mart(warehouse):
    """Names (whole cells), emails and phones (anywhere in a cell) appear in no mart."""
    names = {"ann", "lee", "bob", "ray", "gus", "orr", "hal", "uba"}
    contacts = {"@example.com", "555 01", "20 0103"}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
            ).fetchall()
        ]
        assert len(tables) >= 8
        for table in tables:
            cells = {
                str(v).strip().lower()
                for row in con.execute(f"SELECT * FROM marts.{table}").fetchall()
                for v in row
                if v is not None
            }
            found = (names & cells) | {p for p in contacts if any(p in c for c in cells)}
            assert not found, f"marts.{table} holds {found}"
    finally:
        con.close()


def test_each_dbt_stage_starts_from_the_partial_parse_of_make_parse(hand_night):
    """The night's dbt parses nothing again (a full parse costs ~7 s a stage): its profile
    and vars are those of `make parse`, whatever the store's folder (pipelines/dbt.py)."""
    from pipelines.assets import _dbt_target
    from pipelines.resources import WarehouseResource

    warehouse = WarehouseResource(path=str(hand_night / "warehouse.duckdb"))
    for stage in ("dbt_customer_features", "dbt_referral_roi"):
        log = (_dbt_target(warehouse, stage) / "dbt.log").read_text().splitlines()
        events = [json.loads(line)["info"]["name"] for line in log]
        assert "UnableToPartialParse" not in events, stage
        assert events.count("PartialParsingSkipParsing") == 1, stage
