"""Mention Me's CRM feed as delivered: tests/fixtures/sources/mention_me/2024-06-01 holds
crm_feed.csv (23 rows with the feed's documented header row), next to the shop's own
customers.csv (24 customers, C01..C24) and orders.csv (26 orders) in the contract layout.
Every expected value below is worked out by hand from those files.

Lines of crm_feed.csv (header = line 1) and what each is for:
  2 ann, 21 wes   no Referred By: a referrer's own row, skipped
  3 bob <- ann    converted (Qualified 2024-01-06 12:00), ids by Merchant Customer ID
  4 cara <- ann   signed up only; 5 dan <- ann: referred only
  6 newfriend1 <- bob   the friend has no account: referee_customer_id NULL
  7 eve <- EVE@Example.com   a self-referral (same email, other case)
  8 finn <- gia, 9 " Finn@Example.com " <- hal   one referee converted twice
  10 zed <- stranger@example.com / S-999   a referrer nobody knows: quarantined
  11 kim <- (no email) C10    the referrer named by Merchant Customer ID only
  12 ola <- leo-old@example.com / C12   the id wins over an email nobody knows
  13 mia <- leo   Rewarded without Qualified: converted at the Rewarded date
  14 ned <- ann   no Referred Date: sent_at = the Signed Up date
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.exports import write_csv
from tests.pipeline_runner import store_of
from tests.source_runs import (
    assert_no_personal_data,
    ingested,
    ingested_once,
    referral_marts,
    run_once,
)

FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "mention_me"
DAY = "2024-06-01"
SKIP_REASON = "customer not referred by anyone (a referrer's or sharer's own row)"


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def referrals(con) -> dict[int, tuple]:
    """line -> (referrer, referee, status, sent_at, converted_at)."""
    return {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT _line_number, referrer_customer_id, referee_customer_id, status, sent_at, "
            "converted_at FROM raw.referrals"
        ).fetchall()
    }


def test_feed_is_recognised_and_counted(raw):
    _, result = raw
    assert result.sources == {
        "mention_me": {
            "files": {"crm_feed.csv": "mention_me/crm_feed"},
            "rows_read": 23,
            "rows_skipped": 2,  # lines 2 and 21
            "skipped_reasons": {SKIP_REASON: 2},
            "tables": {"referrals": {"rows_mapped": 21, "rows_quarantined": 1, "rows_loaded": 20}},
        }
    }
    # the shop's own files beside the feed are read as contract files
    assert result.tables["customers"].rows_loaded == 24
    assert result.tables["orders"].rows_loaded == 26


def test_status_and_dates_come_from_the_referral_dates(raw):
    con, _ = raw
    got = referrals(con)
    assert len(got) == 20
    assert got[3] == (
        "C01",
        "C02",
        "converted",
        datetime(2024, 1, 5, 10),
        datetime(2024, 1, 6, 12),  # Qualified, not Signed Up nor Rewarded
    )
    assert got[4] == ("C01", "C03", "signed_up", datetime(2024, 2, 1, 10), None)
    assert got[5] == ("C01", "C04", "sent", datetime(2024, 3, 1, 9), None)
    # Rewarded 2024-05-01 10:00 without a Qualified date: converted then
    assert got[13] == (
        "C12",
        "C13",
        "converted",
        datetime(2024, 4, 28, 10),
        datetime(2024, 5, 1, 10),
    )
    # no Referred Date: sent when the referee signed up
    assert got[14] == ("C01", "C14", "signed_up", datetime(2024, 5, 5, 10), None)
    statuses = [s for _, _, s, _, _ in got.values()]
    assert (statuses.count("converted"), statuses.count("signed_up"), statuses.count("sent")) == (
        11,
        3,
        6,
    )


def test_friend_without_account_and_self_referral(raw):
    con, _ = raw
    got = referrals(con)
    # newfriend1@example.com is nobody's email: no referee customer, the email kept in raw
    assert got[6] == ("C02", None, "sent", datetime(2024, 4, 1, 9, 30), None)
    assert con.execute(
        "SELECT referee_email FROM raw.referrals WHERE _line_number = 6"
    ).fetchone() == ("newfriend1@example.com",)
    # eve referred by EVE@Example.com: referrer and referee are one customer (the marts
    # flag it as a self-referral and count it nowhere)
    assert got[7] == (
        "C05",
        "C05",
        "converted",
        datetime(2024, 2, 10, 10),
        datetime(2024, 2, 12, 10),
    )


def test_one_referee_converted_twice_is_two_referrals(raw):
    con, _ = raw
    got = referrals(con)
    # finn@example.com and " Finn@Example.com " (an unknown Merchant Customer ID C06-B):
    # one customer, C06, by the normalised email; two referrers, two referral ids
    assert got[8] == (
        "C07",
        "C06",
        "converted",
        datetime(2024, 3, 8, 10),
        datetime(2024, 3, 10, 15),
    )
    assert got[9] == (
        "C08",
        "C06",
        "converted",
        datetime(2024, 3, 30, 10),
        datetime(2024, 4, 2, 10),
    )
    ids = con.execute(
        "SELECT referral_id FROM raw.referrals WHERE _line_number IN (8, 9) ORDER BY 1"
    ).fetchall()
    assert len({i for (i,) in ids}) == 2
    assert all(i.startswith("mention_me:") and len(i) == len("mention_me:") + 24 for (i,) in ids)
    assert not any("@" in i or "finn" in i.lower() for (i,) in ids)


def test_merchant_customer_id_names_the_customer(raw):
    con, _ = raw
    got = referrals(con)
    # line 11: no Referred By email, Referred By Merchant Customer ID C10
    assert got[11][:3] == ("C10", "C11", "converted")
    # line 12: leo-old@example.com is nobody's email; C12 is the shop's id of leo
    assert got[12][:3] == ("C12", "C15", "converted")


def test_unknown_referrer_is_quarantined_with_its_line(raw):
    con, _ = raw
    (row,) = con.execute(
        "SELECT file, line_number, column_name, value, reason, source_system, raw_row "
        "FROM raw.quarantine"
    ).fetchall()
    assert row[:6] == (
        "crm_feed.csv",
        10,
        "referrer_customer_id",
        "mention_me:S-999",  # the id a new person would get: not a customer
        "unknown customer",
        "mention_me",
    )
    vendor_row = json.loads(row[6])
    assert vendor_row["Referred By Customer Email"] == "stranger@example.com"
    assert vendor_row["Referred By Merchant Customer ID"] == "S-999"


def test_names_are_not_kept_and_situation_goes_to_extra(raw):
    con, _ = raw
    keys = con.execute("SELECT DISTINCT unnest(json_keys(_extra)) FROM raw.referrals").fetchall()
    assert keys == [("Referred Situation",)]
    assert con.execute("SELECT _extra FROM raw.referrals WHERE _line_number = 4").fetchone() == (
        '{"Referred Situation":"homepage"}',
    )
    # no reward amounts in the feed (no Friendbuy file beside it)
    assert con.execute(
        "SELECT count(*) FROM raw.referrals WHERE reward_referrer_amount IS NOT NULL "
        "OR reward_type IS NOT NULL OR channel IS NOT NULL"
    ).fetchone() == (0,)


OLD_HEADER = [
    "CustomerFirstname",
    "CustomerSurname",
    "CustomerEmail",
    "MerchantCustomerID",
    "CustomerRecognisedDate",
    "ReferredByCustomerEmail",
    "ReferredByMerchantCustomerID",
    "OptedInToReceivedMerchantMarketingEmail",
    "ReferredDate",
    "ReferredSignedUpDate",
    "ReferredQualifiedDate",
    "Share Method",
]


def test_pascal_case_headers_uk_dates_and_share_method(tmp_path):
    folder = tmp_path / DAY
    folder.mkdir()
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(FIXTURE / DAY / name, folder)
    write_csv(
        folder,
        "crm_feed.csv",
        OLD_HEADER,
        [
            # dd/mm/yyyy: 03/04/2024 is the 3rd of April
            ["Bob", "Stone", "bob@example.com", "C02", "03/04/2024 10:00", "ann@example.com",
             "C01", "1", "01/04/2024 09:15", "03/04/2024 10:00", "03/04/2024 11:30", "WhatsApp"],
            ["Cara", "Diaz", "cara@example.com", "C03", "05/04/2024 10:00", "ann@example.com",
             "C01", "0", "05/04/2024 08:00", "", "", "Email"],
            ["Dan", "Wu", "dan@example.com", "C04", "06/04/2024 10:00", "ann@example.com",
             "C01", "0", "06/04/2024 08:00", "", "", "carrier pigeon"],
            ["Eve", "Park", "eve@example.com", "C05", "07/04/2024 10:00", "ann@example.com",
             "C01", "0", "07/04/2024 08:00", "", "", ""],
        ],
    )  # fmt: skip
    con, result = ingested(tmp_path)
    assert result.sources["mention_me"]["files"] == {"crm_feed.csv": "mention_me/crm_feed"}
    assert con.execute(
        "SELECT referee_customer_id, sent_at, status, converted_at, channel FROM raw.referrals "
        "ORDER BY _line_number"
    ).fetchall() == [
        ("C02", datetime(2024, 4, 1, 9, 15), "converted", datetime(2024, 4, 3, 11, 30), "social"),
        ("C03", datetime(2024, 4, 5, 8), "sent", None, "email"),
        ("C04", datetime(2024, 4, 6, 8), "sent", None, "other"),  # any other method
        ("C05", datetime(2024, 4, 7, 8), "sent", None, None),  # none given
    ]
    con.close()


def test_unparseable_date_is_quarantined_by_column(tmp_path):
    folder = tmp_path / DAY
    folder.mkdir()
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(FIXTURE / DAY / name, folder)
    header = (FIXTURE / DAY / "crm_feed.csv").read_text().splitlines()[0].split(",")
    row = dict.fromkeys(header, "")
    row.update(
        {
            "Customer Email": "bob@example.com",
            "Customer Recognised Date": "2024-01-06 11:00:00",
            "Referred By Customer Email": "ann@example.com",
            "Referred Date": "2024-01-05 10:00:00",
            "Referred Qualified Date": "last tuesday",
        }
    )
    write_csv(folder, "crm_feed.csv", header, [list(row.values())])
    con, result = ingested(tmp_path, threshold=1.0)
    assert con.execute(
        "SELECT file, line_number, column_name, value, reason FROM raw.quarantine"
    ).fetchall() == [("crm_feed.csv", 2, "converted_at", "last tuesday", "unparseable timestamp")]
    assert result.sources["mention_me"]["tables"]["referrals"]["rows_quarantined"] == 1
    con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, str]:
    """The whole nightly job on the fixture export, once for the module."""
    return run_once(tmp_path_factory, FIXTURE)


def test_marts_of_the_tricky_rows(warehouse):
    # the store: staging and the marts as built (the analysts' file has the marts only)
    con = duckdb.connect(str(store_of(warehouse[0])), read_only=True)
    try:
        features, roi = referral_marts(con)
        staged = con.execute(
            "SELECT count(*), count(referee_email_hash) FROM staging.stg_referrals"
        ).fetchone()
    finally:
        con.close()
    assert len(features) == 24
    # ann: bob (converted, attributed), cara, dan, ned
    assert features["C01"] == (4, 1, False, None)
    assert features["C02"] == (1, 0, True, "C01")
    # eve's self-referral counts nowhere: not sent, not converted, not referred
    assert features["C05"] == (0, 0, False, None)
    # finn converted twice: attributed to the earlier conversion (gia, 2024-03-10); hal's
    # conversion is a duplicate and his referrals_sent counts only newfriend4
    assert features["C06"] == (0, 0, True, "C07")
    assert features["C07"] == (2, 1, False, None)
    assert features["C08"] == (1, 0, False, None)
    assert features["C10"] == (2, 2, False, None)  # kim (by id) and ivy
    assert features["C12"] == (2, 2, False, None)  # ola (by id) and mia
    assert features["C09"] == (0, 0, True, "C10")  # her order was refunded: still referred
    # 20 referrals less the self-referral and the duplicate conversion: 18 counted, by
    # ann, bob, gia, hal, jon, leo, quin, sam, uma, wes; 9 attributed conversions (bob,
    # finn, kim, ola, mia, ivy, pat, vic, xena). Referred revenue: completed orders of each
    # referee from the day of conversion: bob 40 + 60, finn 50 + 70, kim 65, ola 22,
    # mia 90, pat 33, vic 16 (ivy's order refunded, xena's pending) = 446. No rewards.
    assert roi == (10, 18, 9, 9, Decimal("446.0000"), Decimal("0.0000"))
    # every referral staged, the referees' emails hashed (the three friends without an
    # account have an email too)
    assert staged == (20, 20)


def test_no_personal_data_reaches_staging_marts_or_logs(warehouse):
    # the feed's names and every email (the friends' too) stay in raw
    names = {"Ann", "Lee", "Nora", "Vale", "Zed", "Quay", "Theo", "Lind", "Omar", "Sly"}
    assert_no_personal_data(*warehouse, names)
