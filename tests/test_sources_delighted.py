"""Delighted's survey responses as downloaded: tests/fixtures/sources/delighted/2024-06-01
holds delighted-responses.csv (23 NPS responses: Response ID, Email, Name, Score, Comment,
Created At in Unix seconds, Permalink and a person property) next to a Shopify export
(customers_export.csv: 22 customers 7001..7022; orders_export.csv: 22 orders).  Every
expected value below is worked out by hand from those files.

Lines of delighted-responses.csv (header = line 1):
  2 ann@example.com 10 at 1714557600 (2024-05-01 10:00 UTC)
  3 " ANN@Example.COM " 8 at 1716229800 (2024-05-20 18:30 UTC): the same customer
  4 bob 11: out of range, quarantined
  6 dan 2, 11 ivy 0 (a phone number in the comment), 24 vic 1: detractors
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.sources import DEFAULT_EMAIL_SALT
from tests.exports import write_csv
from tests.pipeline_runner import store_of
from tests.source_runs import assert_no_personal_data, ingested, ingested_once, run_once

FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "delighted"
DAY = "2024-06-01"
RESPONSES = "delighted-responses.csv"


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def test_responses_are_recognised_and_counted(raw):
    _, result = raw
    assert result.sources["delighted"] == {
        "files": {RESPONSES: "delighted/responses"},
        "rows_read": 23,
        "rows_skipped": 0,
        "skipped_reasons": {},
        "tables": {"surveys": {"rows_mapped": 23, "rows_quarantined": 1, "rows_loaded": 22}},
    }
    assert result.sources["shopify"]["tables"]["customers"]["rows_loaded"] == 22
    assert result.tables["surveys"].rows_loaded == 22


def test_unix_seconds_become_utc_timestamps(raw):
    con, _ = raw
    assert con.execute(
        "SELECT response_id, customer_id, responded_at, nps, csat FROM raw.surveys "
        "WHERE _line_number IN (2, 3, 24) ORDER BY _line_number"
    ).fetchall() == [
        ("delighted:5001", "shopify:7001", datetime(2024, 5, 1, 10), 10, None),
        ("delighted:5002", "shopify:7001", datetime(2024, 5, 20, 18, 30), 8, None),
        ("delighted:5023", "shopify:7022", datetime(2024, 5, 22, 10), 1, None),
    ]


def test_score_out_of_range_is_quarantined_with_file_and_line(raw):
    con, _ = raw
    (row,) = con.execute(
        "SELECT file, line_number, column_name, value, reason, source_system, customer_id, "
        "raw_row FROM raw.quarantine"
    ).fetchall()
    assert row[:7] == (
        RESPONSES,
        4,
        "nps",
        "11",
        "out of range (must be <= 10)",
        "delighted",
        "shopify:7002",
    )
    assert json.loads(row[7])["Response ID"] == "5003"  # the vendor's row, as written


def test_respondent_in_shopify_under_another_case_is_one_customer(raw):
    con, _ = raw
    # " ANN@Example.COM " (Delighted) and ann@example.com (Shopify 7001): the crosswalk
    # holds one identity, and both answers are shopify:7001's
    assert con.execute(
        "SELECT source_system, source_id, customer_id FROM raw.customer_identities "
        "WHERE email_hash = sha256(? || 'ann@example.com')",
        [DEFAULT_EMAIL_SALT],
    ).fetchall() == [("shopify", "7001", "shopify:7001")]
    assert con.execute(
        "SELECT count(DISTINCT customer_id) FROM raw.customer_identities"
    ).fetchone() == (22,)
    assert con.execute(
        "SELECT count(*) FROM raw.surveys WHERE customer_id = 'shopify:7001'"
    ).fetchone() == (2,)


def test_names_comments_and_permalinks_are_not_kept(raw):
    con, _ = raw
    keys = con.execute("SELECT DISTINCT unnest(json_keys(_extra)) FROM raw.surveys").fetchall()
    assert keys == [("Purchase Experience",)]
    text = str(con.execute("SELECT * FROM raw.surveys").fetchall())
    for personal in ("Ann Lee", "555-0100", "My refund took weeks", "app.delighted.com"):
        assert personal not in text


API_HEADER = ["id", "person", "survey_type", "score", "comment", "permalink", "created_at",
              "updated_at"]  # fmt: skip


def test_api_layout_survey_types_and_person_without_email(tmp_path):
    folder = tmp_path / DAY
    folder.mkdir()
    for name in ("customers_export.csv", "orders_export.csv"):
        shutil.copy(FIXTURE / DAY / name, folder)
    write_csv(
        folder,
        "survey_responses.csv",
        API_HEADER,
        [
            ["1", "ann@example.com", "nps", "9", "", "", "1714557600", ""],
            ["2", "bob@example.com", "csat", "4", "", "", "2024-05-02T08:00:00Z", ""],
            ["3", "cara@example.com", "ces", "6", "", "", "1714644000", ""],
            ["4", "10", "nps", "7", "", "", "1714644000", ""],
            ["5", "dan@example.com", "csat", "7", "", "", "2024-05-03 09:30:00 +0200", ""],
        ],
    )
    con, result = ingested(tmp_path, threshold=1.0)
    assert result.sources["delighted"]["skipped_reasons"] == {
        "survey type other than NPS or CSAT (CES, 5-star, smileys, thumbs, eNPS, PMF)": 1
    }
    assert con.execute(
        "SELECT response_id, customer_id, responded_at, nps, csat FROM raw.surveys "
        "ORDER BY response_id"
    ).fetchall() == [
        ("delighted:1", "shopify:7001", datetime(2024, 5, 1, 10), 9, None),
        ("delighted:2", "shopify:7002", datetime(2024, 5, 2, 8), None, 4),
    ]
    assert con.execute(
        "SELECT line_number, column_name, value, reason FROM raw.quarantine ORDER BY 1"
    ).fetchall() == [
        (5, None, None, "no respondent email (a Delighted person id alone cannot be linked)"),
        # a CSAT score is 1-5; the +0200 offset would have made it 07:30 UTC
        (6, "csat", "7", "out of range (must be <= 5)"),
    ]
    con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, str]:
    """The whole nightly job on the fixture export, once for the module."""
    return run_once(tmp_path_factory, FIXTURE)


def test_marts_of_the_tricky_rows(warehouse):
    # the store: staging and the marts as built (the analysts' file has the marts only)
    con = duckdb.connect(str(store_of(warehouse[0])), read_only=True)
    try:
        features = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT customer_id, nps_latest, nps_avg, nps_class, advocate_type "
                "FROM marts.customer_features"
            ).fetchall()
        }
        roi = con.execute(
            "SELECT referrers, referrals_sent, referrals_converted, referred_revenue "
            "FROM marts.referral_roi_by_segment WHERE segment_id = 'all'"
        ).fetchone()
        staged = con.execute("SELECT count(*) FROM staging.stg_surveys").fetchone()
    finally:
        con.close()
    assert len(features) == 22
    # ann: 10 on 2024-05-01, 8 on 2024-05-20 (latest): passive, average 9
    assert features["shopify:7001"] == (8, 9.0, "passive", "none")
    # bob's only answer (11) was quarantined: no NPS
    assert features["shopify:7002"] == (None, None, None, "none")
    assert features["shopify:7003"] == (9, 9.0, "promoter", "passive")
    assert features["shopify:7004"] == (2, 2.0, "detractor", "none")
    assert features["shopify:7009"][:3] == (0, 0.0, "detractor")  # ivy
    assert staged == (22,)
    assert roi == (0, 0, 0, 0)  # no referrals in this export


def test_no_personal_data_reaches_staging_marts_or_logs(warehouse):
    # names, comments (one with a phone number), permalinks and every email stay out
    personal = {
        "Ann Lee",
        "Ivy Hart",
        "Love the mugs",
        "Call me on 555-0100",
        "My refund took weeks",
        "https://app.delighted.com/r/fixture5001",
    }
    assert_no_personal_data(*warehouse, personal)
