"""Friendbuy's account credit export as downloaded: tests/fixtures/sources/friendbuy/
2024-06-01 holds account_credit_export.csv (22 ledger rows with the export's documented
header row), next to the shop's own customers.csv (C01..C24) and orders.csv in the
contract layout.  Every expected value below is worked out by hand from those files.

Lines of account_credit_export.csv (header = line 1):
  2 ann -> bob Reward 10            4/5 jon -> ivy Reward 15, Reversal 15 (cancelled)
  6 jon -> kim Reward 20            7 gia -> finn 10, 8 hal -> " Finn@Example.com " 10
  11/12 leo -> mia Reward 25, Reversal 10 (net 15)
  13 (no email) Customer ID C12 -> ola 10      14 quin -> pat 10
  15 eve -> EVE@example.com (a self-referral) 10
  17 uma -> vic 10     18 wes -> xena 10     20 sam -> newfriend5 (no account) 10
  21 ann -> dan 10     22 ann -> tia 10
  skipped: 3, 10, 23 Redemption; 9 Manual; 16 Credit Expiration; 19 a Reversal naming no
  friend (a checkout redemption undone, per Friendbuy's definition)
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import discover_exports, ingest_export
from pipelines.sources import DEFAULT_EMAIL_SALT, SourceSpecError, load_registry
from tests.exports import write_csv
from tests.source_runs import (
    assert_no_personal_data,
    connect,
    ingest_all,
    ingested_once,
    referral_marts,
    run_once,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
FIXTURE = FIXTURES / "friendbuy"
DAY = "2024-06-01"
CREDITS = "account_credit_export.csv"
HEADER = (FIXTURE / DAY / CREDITS).read_text().splitlines()[0].split(",")


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def by_line(con, export_date: str = DAY) -> dict[int, tuple]:
    """line -> (referrer, referee, status, sent_at, converted_at, reward)."""
    return {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT _line_number, referrer_customer_id, referee_customer_id, status, sent_at, "
            "converted_at, reward_referrer_amount FROM raw.referrals WHERE _export_date = ?",
            [export_date],
        ).fetchall()
    }


def test_ledger_is_recognised_and_counted(raw):
    _, result = raw
    assert result.sources == {
        "friendbuy": {
            "files": {CREDITS: "friendbuy/account_credits"},
            "rows_read": 22,
            "rows_skipped": 6,
            "skipped_reasons": {
                "Credit Expiration (not a referral reward)": 1,
                "Manual credit adjustment (not a referral reward)": 1,
                "Redemption (credit spent by the customer, not a referral reward)": 3,
                "Reward or Reversal naming no friend (not a referral reward)": 1,
            },
            # 16 Rewards and Reversals of 14 advocate-friend pairs
            "tables": {"referrals": {"rows_mapped": 14, "rows_quarantined": 0, "rows_loaded": 14}},
        }
    }
    assert result.rows_quarantined == 0


def test_rewards_are_converted_referrals_of_the_advocate(raw):
    con, _ = raw
    got = by_line(con)
    assert len(got) == 14
    at = datetime(2024, 1, 6, 12)
    assert got[2] == ("C01", "C02", "converted", at, at, Decimal("10.0000"))
    assert got[6] == (
        "C10",
        "C11",
        "converted",
        datetime(2024, 3, 4, 10),
        datetime(2024, 3, 4, 10),
        Decimal("20.0000"),
    )
    # no Customer Email: the Customer ID (the shop's id) names the advocate
    assert got[13][:3] == ("C12", "C15", "converted")
    # the friend has no account: no referee customer, the friend's email kept in raw
    assert got[20][:3] == ("C19", None, "converted")
    assert con.execute(
        "SELECT referee_email, reward_currency, reward_type, reward_referee_amount "
        "FROM raw.referrals WHERE _line_number = 20"
    ).fetchone() == ("newfriend5@example.com", "USD", "credit", None)


def test_a_reversal_cancels_its_reward(raw):
    con, _ = raw
    got = by_line(con)
    # line 4 Reward 15, line 5 Reversal -15 of the same friend: nothing left, rejected
    assert got[4] == ("C10", "C09", "rejected", datetime(2024, 2, 19, 10), None, Decimal("0.0000"))
    # line 11 Reward 25, line 12 Reversal 10: 15 left, still converted
    assert got[11][2:] == (
        "converted",
        datetime(2024, 5, 1, 10),
        datetime(2024, 5, 1, 10),
        Decimal("15.0000"),
    )
    # line 19 (a Reversal naming no friend) is skipped: wes's reward of line 18 is whole
    assert got[18][5] == Decimal("10.0000")
    assert 5 not in got and 12 not in got and 19 not in got


def test_one_friend_rewarded_twice_and_a_self_referral(raw):
    con, _ = raw
    got = by_line(con)
    # finn@example.com and " Finn@Example.com ": one referee C06, two advocates
    assert got[7][:3] == ("C07", "C06", "converted")
    assert got[8][:3] == ("C08", "C06", "converted")
    assert got[15][:3] == ("C05", "C05", "converted")  # eve -> EVE@example.com


def test_manual_reasons_and_issuers_are_not_kept(raw):
    con, _ = raw
    assert con.execute("SELECT DISTINCT _extra FROM raw.referrals").fetchall() == [(None,)]
    text = str(con.execute("SELECT * FROM raw.referrals").fetchall())
    assert "agent@shop.example" not in text and "Goodwill" not in text


def test_with_a_mention_me_feed_rewards_complete_its_referrals(tmp_path):
    """Both platforms in one export: Mention Me's referrals are the referrals, Friendbuy's
    net reward of the same referrer and friend fills their reward; pairs Mention Me does not
    have stay Friendbuy's own referrals."""
    folder = tmp_path / DAY
    shutil.copytree(FIXTURES / "mention_me" / DAY, folder)
    shutil.copy(FIXTURE / DAY / CREDITS, folder)
    con = connect()
    (result,) = ingest_all(con, tmp_path)
    # 12 of the 14 pairs are Mention Me's referrals: sam -> newfriend5 and ann -> tia
    # (Mention Me has tia referred by sam) are left
    assert result.sources["friendbuy"]["tables"]["referrals"] == {
        "rows_mapped": 2,
        "rows_quarantined": 0,
        "rows_loaded": 2,
    }
    assert result.sources["mention_me"]["tables"]["referrals"]["rows_loaded"] == 20
    rewards = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "SELECT _source_system, _line_number, status, reward_referrer_amount, "
            "reward_currency, reward_type FROM raw.referrals"
        ).fetchall()
    }
    assert len(rewards) == 22
    credit = ("USD", "credit")
    assert rewards["mention_me", 3] == ("converted", Decimal("10.0000"), *credit)  # bob
    # kim: Mention Me names the referrer by Merchant Customer ID only, Friendbuy by email;
    # one customer C10, so one referral
    assert rewards["mention_me", 11] == ("converted", Decimal("20.0000"), *credit)
    # ola: Mention Me's leo-old@example.com / C12, Friendbuy's Customer ID C12
    assert rewards["mention_me", 12] == ("converted", Decimal("10.0000"), *credit)
    assert rewards["mention_me", 13] == ("converted", Decimal("15.0000"), *credit)  # mia
    # ivy: the reward was reversed; Mention Me's status stands, the reward is 0
    assert rewards["mention_me", 15] == ("converted", Decimal("0.0000"), *credit)
    assert rewards["mention_me", 4] == ("signed_up", None, None, None)  # cara: no reward
    assert rewards["friendbuy", 20] == ("converted", Decimal("10.0000"), *credit)
    assert rewards["friendbuy", 22] == ("converted", Decimal("10.0000"), *credit)
    con.close()


def test_a_later_reversal_cancels_an_earlier_exports_reward(tmp_path):
    first = tmp_path / DAY
    shutil.copytree(FIXTURE / DAY, first)
    later = tmp_path / "2024-07-01"
    later.mkdir()
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(FIXTURE / DAY / name, later)
    write_csv(
        later,
        CREDITS,
        HEADER,
        [
            ["2024-06-10T10:00:00Z", "ann@example.com", "C01", "Reversal", "bob@example.com",
             "O002", "", "", "-10.00", "0.00", "USD"],
            ["2024-06-11T10:00:00Z", "leo@example.com", "C12", "Reversal", "mia@example.com",
             "O015", "", "", "-5.00", "10.00", "USD"],
            ["2024-06-12T10:00:00Z", "gia@example.com", "C07", "Reversal",
             "newfriend9@example.com", "O900", "", "", "-10.00", "0.00", "USD"],
            ["2024-06-13T10:00:00Z", "kim@example.com", "C11", "Bonus", "", "", "", "",
             "5.00", "5.00", "USD"],
        ],
    )  # fmt: skip
    con = connect()
    _, result = ingest_all(con, tmp_path, threshold=1.0)
    got = by_line(con, "2024-07-01")
    # the same referral ids as on 2024-06-01: new versions of those referrals
    ids = con.execute(
        "SELECT _export_date, _line_number, referral_id FROM raw.referrals "
        "WHERE (_export_date, _line_number) IN "
        "((DATE '2024-06-01', 2), (DATE '2024-06-01', 11), (DATE '2024-07-01', 2), "
        "(DATE '2024-07-01', 3)) ORDER BY 1, 2"
    ).fetchall()
    assert [i[2] for i in ids[2:]] == [i[2] for i in ids[:2]]
    # ann -> bob: 10 earlier, 10 reversed now: rejected, sent_at kept from the earlier one
    assert got[2] == ("C01", "C02", "rejected", datetime(2024, 1, 6, 12), None, Decimal("0.0000"))
    # leo -> mia: 15 earlier, 5 reversed now: 10 left, converted as before
    assert got[3] == (
        "C12",
        "C13",
        "converted",
        datetime(2024, 5, 1, 10),
        datetime(2024, 5, 1, 10),
        Decimal("10.0000"),
    )
    quarantined = con.execute(
        "SELECT line_number, reason, raw_row FROM raw.quarantine ORDER BY line_number"
    ).fetchall()
    assert [q[:2] for q in quarantined] == [
        (4, "Reversal of a reward in no export (no Reward of this advocate and friend)"),
        (5, 'unknown Credit Source "Bonus"'),
    ]
    assert json.loads(quarantined[1][2])["Credit Source"] == "Bonus"
    assert result.sources["friendbuy"]["tables"]["referrals"] == {
        "rows_mapped": 4,
        "rows_quarantined": 2,
        "rows_loaded": 2,
    }
    con.close()


def test_an_advocate_nobody_knows_is_quarantined(tmp_path):
    folder = tmp_path / DAY
    folder.mkdir()
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(FIXTURE / DAY / name, folder)
    write_csv(
        folder,
        CREDITS,
        HEADER,
        [
            ["05/15/2024 09:00", "stranger@example.com", "S-999", "Reward", "zed@example.com",
             "O999", "", "", "10.00", "10.00", "USD"],
            ["05/16/2024 09:00", "ann@example.com", "C01", "Reward", "bob@example.com",
             "O002", "", "", "1,000.00", "1000.00", "USD"],
        ],
    )  # fmt: skip
    con = connect()
    ingest_all(con, tmp_path, threshold=1.0)
    assert con.execute(
        "SELECT file, line_number, column_name, value, reason, source_system FROM raw.quarantine"
    ).fetchall() == [
        (CREDITS, 2, "referrer_customer_id", "friendbuy:S-999", "unknown customer", "friendbuy")
    ]
    # US dates (month first) and a thousands comma
    assert con.execute("SELECT sent_at, reward_referrer_amount FROM raw.referrals").fetchall() == [
        (datetime(2024, 5, 16, 9), Decimal("1000.0000"))
    ]
    con.close()


def test_another_systems_layout_must_exist(tmp_path):
    """`{{ layout('<system>/<layout>') }}` (how Mention Me reads Friendbuy's rewards) names a
    layout of the registry; a mapping naming none fails, naming it."""
    system = tmp_path / "systems" / "ledgerx"
    system.mkdir(parents=True)
    (system / "system.yaml").write_text(
        "layouts:\n"
        "  rows:\n"
        "    columns:\n"
        "      ref: {headers: [Ledger Ref], required: true}\n"
        "tables:\n"
        "  referrals:\n"
        "    needs: [rows]\n"
        "    sql: referrals.sql\n"
    )
    (system / "referrals.sql").write_text(
        "SELECT ref AS referral_id, _source_file, _line_number FROM rows "
        "WHERE ref NOT IN (SELECT customer_email FROM {{ layout('nosuch/layout') }} AS x)"
    )
    folder = tmp_path / "exports" / DAY
    folder.mkdir(parents=True)
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(FIXTURE / DAY / name, folder)
    write_csv(folder, "ledger.csv", ["Ledger Ref"], [["r1"]])
    con = connect()
    (export,) = discover_exports(tmp_path / "exports")
    with pytest.raises(SourceSpecError, match="layout\\('nosuch/layout'\\): no such layout"):
        ingest_export(
            con, export, 0.05, "USD", DEFAULT_EMAIL_SALT, load_registry([tmp_path / "systems"])
        )
    con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, str]:
    """The whole nightly job on the fixture export, once for the module."""
    return run_once(tmp_path_factory, FIXTURE)


def test_marts_of_the_tricky_rows(warehouse):
    con = duckdb.connect(str(warehouse[0]), read_only=True)
    try:
        features, roi = referral_marts(con)
    finally:
        con.close()
    assert features["C01"] == (3, 3, False, None)  # bob, dan, tia
    assert features["C10"] == (2, 1, False, None)  # kim; ivy's reward reversed: rejected
    assert features["C09"] == (0, 0, False, None)
    assert features["C05"] == (0, 0, False, None)  # the self-referral counts nowhere
    assert features["C06"] == (0, 0, True, "C07")  # gia's conversion came first
    assert features["C08"] == (0, 0, False, None)  # hal's is the duplicate conversion
    assert features["C19"] == (1, 0, False, None)  # the friend has no account
    assert features["C12"] == (2, 2, False, None)  # mia, and ola by Customer ID
    # 14 referrals less the self-referral and the duplicate: 12 counted, by 8 referrers;
    # 10 attributed conversions (not ivy's: rejected; not newfriend5's: no referee).
    # Referred revenue: bob 40 + 60, kim 65, finn 50 + 70, mia 90, ola 22, pat 33, vic 16,
    # dan 25, tia 38 (xena's order pending) = 509. Reward cost of the attributed
    # conversions: 10 + 20 + 10 + 15 + 10 + 10 + 10 + 10 + 10 + 10 = 115.
    assert roi == (8, 12, 10, 10, Decimal("509.0000"), Decimal("115.0000"))


def test_no_personal_data_reaches_staging_marts_or_logs(warehouse):
    # the manual adjustment's reason and issuer, and every email, stay out
    personal = {"agent@shop.example", "Goodwill credit after a late delivery"}
    assert_no_personal_data(*warehouse, personal)
