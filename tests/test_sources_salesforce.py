"""Salesforce Contact and Opportunity exports (Data Loader / Data Export: API field names as
headers, every value quoted): tests/fixtures/sources/salesforce/2025-03-31 holds Contact.csv
(22 contacts: one merged into another, one deleted) and Opportunity.csv (22 opportunities:
15 won, 6 open or lost, 1 deleted), plus fx_rates.csv (EUR 1.1, GBP 1.25).  Every
expected value below is worked out by hand from those files.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.sources import load_registry
from tests.exports import write_csv
from tests.source_runs import connect, ingest, ingested_once, order, run_once

FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "salesforce"
DAY = "2025-03-31"
MERGED = "contact merged into another (MasterRecordId): its opportunities count for the master"
DELETED_CONTACT = "deleted contact (IsDeleted)"
DELETED_OPPORTUNITY = "deleted opportunity (IsDeleted)"
NOT_WON = "opportunity not won (open or lost): not an order"
CONTACT_HEADER = ["Id", "AccountId", "Email", "CreatedDate", "MasterRecordId", "IsDeleted"]
OPPORTUNITY_HEADER = ["Id", "AccountId", "ContactId", "Name", "StageName", "Amount", "CloseDate"]

ANN = "salesforce:0035g00000U8JZpAAN"
CY = "salesforce:0035g00000NCFbaAAH"  # the master; 0035g00000XlD6gAAF was merged into it


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def test_files_are_recognised_and_counted(raw):
    _, result = raw
    assert result.rows_quarantined == 0
    assert result.sources == {
        "salesforce": {
            "files": {
                "Contact.csv": "salesforce/contacts",
                "Opportunity.csv": "salesforce/opportunities",
            },
            "rows_read": 22 + 22,
            "rows_skipped": 1 + 1 + 1 + 6,
            "skipped_reasons": {
                MERGED: 1,
                DELETED_CONTACT: 1,
                DELETED_OPPORTUNITY: 1,
                NOT_WON: 6,  # 2 Closed Lost, 4 open
            },
            "tables": {
                "customers": {"rows_mapped": 20, "rows_quarantined": 0, "rows_loaded": 20},
                "orders": {"rows_mapped": 15, "rows_quarantined": 0, "rows_loaded": 15},
            },
        }
    }
    assert result.tables["fx_rates"].rows_loaded == 2


def test_an_opportunity_of_a_merged_contact_belongs_to_the_master(raw):
    con, _ = raw
    # 0065g00000aiXnk names the merged contact 0035g00000XlD6g: Cy's order all the same
    assert order(con, "0065g00000aiXnkAAE")[:5] == (
        CY,
        datetime(2025, 2, 14),
        Decimal("400.0000"),
        "USD",
        "completed",
    )
    assert order(con, "0065g00000U8Is2AAF")[0] == CY
    # one customer, signed up when the merged contact was created (2024-06-01, before the
    # master's 2024-09-10); the merged contact is neither a customer nor an identity
    assert con.execute(
        "SELECT customer_id, signup_date, acquisition_channel, _line_number FROM raw.customers "
        "WHERE email = 'cy.frost@example.com'"
    ).fetchall() == [(CY, date(2024, 6, 1), "referral", 5)]
    assert con.execute(
        "SELECT count(*) FROM raw.customer_identities WHERE source_id = '0035g00000XlD6gAAF'"
    ).fetchone() == (0,)


def test_deleted_records_count_for_nothing(raw):
    con, _ = raw
    assert con.execute(
        "SELECT count(*) FROM raw.customers WHERE email = 'di.lane@example.com'"
    ).fetchone() == (0,)
    assert order(con, "0065g00000x83rzAAA") is None  # Flo's deleted 300.00
    assert order(con, "0065g00000jZZZZAA4")[:5] == (
        "salesforce:0035g00000Oool8AAB",
        datetime(2025, 2, 20),
        Decimal("200.0000"),
        "EUR",  # multi-currency org: CurrencyIsoCode
        "completed",
    )


def test_won_and_not_won_opportunities(raw):
    con, _ = raw
    assert order(con, "0065g00000g8nprAAA") is None  # Closed Lost
    assert order(con, "0065g00000HVmDGAA1") is None  # Negotiation/Review
    # stage "Signed" of a custom sales process: IsWon says won
    assert order(con, "0065g00000Tp3FsAAJ")[:3] == (
        "salesforce:0035g00000VJ7faAAD",
        datetime(2025, 3, 25),
        Decimal("120.0000"),
    )
    assert order(con, "0065g000008XnBEAA0")[2:4] == (Decimal("60.0000"), "GBP")
    assert con.execute("SELECT count(*), sum(amount) FROM raw.orders").fetchone() == (
        15,
        # 250 + 400 + 100 + 200 + 150 + 500 + 75 + 60 + 1000 + 30 + 45 + 55 + 65 + 80 + 120
        Decimal("3130.0000"),
    )


def test_ids_of_15_characters_and_opportunities_without_a_contact(raw):
    con, _ = raw
    # ContactId written with 15 characters (0035g00000DklZD): Gus, 0035g00000DklZDAAZ
    assert order(con, "0065g00000GeoZDAAZ")[0] == "salesforce:0035g00000DklZDAAZ"
    # no ContactId: the account's first contact by CreatedDate (Ned, 2025-01-10, before Ora)
    assert order(con, "0065g00000MENcKAAX")[0] == "salesforce:0035g00000fribxAAA"
    assert order(con, "0065g00000XeHH2AAN")[0] == "salesforce:0035g00000Udl7dAAB"  # Ora's own


def test_lead_source_opt_out_and_signup(raw):
    con, _ = raw
    got = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT customer_id, email, signup_date, acquisition_channel, marketing_opt_in "
            "FROM raw.customers"
        ).fetchall()
    }
    assert len(got) == 20
    # " Ann.Lee@Example.com" trimmed; CreatedDate 2024-10-15T08:00:00.000+0000; Web
    assert got[ANN] == ("Ann.Lee@Example.com", date(2024, 10, 15), "organic", None)
    channel = {cid[len("salesforce:") :]: v[2] for cid, v in got.items()}
    assert channel["0035g00000DE0iGAAT"] == "partner"  # Partner Referral
    assert channel["0035g00000D0kH8AAJ"] == "other"  # Purchased List
    assert channel["0035g00000DklZDAAZ"] == "other"  # Webinar: not in the map
    assert channel["0035g00000OCj2IAAT"] == "partner"  # none: her opportunity's Partner
    assert channel["0035g00000LGlkoAAD"] == "referral"  # External Referral
    assert channel["0035g00000MXGjtAAH"] == "referral"  # Word of mouth
    assert channel["0035g00000Thf4VAAR"] == "email"
    assert got["salesforce:0035g00000LGlkoAAD"][3] is False  # HasOptedOutOfEmail = true
    # 2025-01-10T23:30:00.000+0000 is still the 10th in UTC
    assert got["salesforce:0035g00000fribxAAA"][1] == date(2025, 1, 10)


# -- variants written in the test ---------------------------------------------------------


def test_merges_through_several_contacts_and_fifteen_character_ids(tmp_path):
    folder = tmp_path / DAY
    # a report export: 15-character ids.  A was merged into B, B later into C.
    write_csv(
        folder,
        "Contact.csv",
        CONTACT_HEADER,
        [
            ["003000000000AAA", "", "a@example.com", "2024-01-01", "003000000000BBB", "true"],
            ["003000000000BBB", "", "b@example.com", "2024-02-01", "003000000000CCC", "true"],
            ["003000000000CCC", "", "c@example.com", "2024-03-01", "", "false"],
        ],
    )
    write_csv(
        folder,
        "Opportunity.csv",
        [*OPPORTUNITY_HEADER, "IsWon"],
        [
            ["006000000000XYZ", "", "003000000000AAA", "Plan", "Closed Won", "10", "2025-01-01",
             "true"],
            ["006000000000xyz", "", "003000000000BBBAA2", "Plan", "Closed Won", "20",
             "2025-01-02", "true"],
        ],
    )  # fmt: skip
    con = connect()
    result = ingest(con, tmp_path)
    assert result.sources["salesforce"]["skipped_reasons"] == {MERGED: 2}
    # C's 18-character id: every chunk of five has its upper-case letters at bits 2-4
    # (CCC of the third chunk: 4 + 8 + 16 = 28 -> "2"), i.e. suffix "AA2"
    assert con.execute("SELECT customer_id, signup_date FROM raw.customers").fetchall() == [
        ("salesforce:003000000000CCCAA2", date(2024, 1, 1))
    ]
    # ids that differ only in case are different opportunities (XYZ -> AA2, xyz -> AAA)
    assert con.execute(
        "SELECT order_id, customer_id, amount FROM raw.orders ORDER BY amount"
    ).fetchall() == [
        ("006000000000XYZAA2", "salesforce:003000000000CCCAA2", Decimal("10.0000")),
        ("006000000000xyzAAA", "salesforce:003000000000CCCAA2", Decimal("20.0000")),
    ]
    con.close()


def test_won_stages_named_in_the_manifest_without_is_won(tmp_path):
    folder = tmp_path / DAY
    write_csv(
        folder,
        "Contact.csv",
        CONTACT_HEADER,
        [["0035g00000U8JZpAAN", "", "a@example.com", "2024-01-01", "", "false"]],
    )
    write_csv(
        folder,
        "Opportunity.csv",
        OPPORTUNITY_HEADER,
        [
            ["0065g00000LQSAJAA5", "", "0035g00000U8JZpAAN", "P", "Closed Won", "10", "2025-01-01"],
            ["0065g00000aiXnkAAE", "", "0035g00000U8JZpAAN", "P", "Signed", "20", "2025-01-02"],
            [
                "0065g00000U8Is2AAF",
                "",
                "0035g00000U8JZpAAN",
                "P",
                "Closed Lost",
                "30",
                "2025-01-03",
            ],
        ],
    )
    (folder / "manifest.json").write_text(
        json.dumps({"mode": "full", "options": {"salesforce": {"won_stages": "Signed"}}})
    )
    con = connect()
    ingest(con, tmp_path)
    assert con.execute("SELECT amount FROM raw.orders ORDER BY 1").fetchall() == [
        (Decimal("10.0000"),),
        (Decimal("20.0000"),),
    ]
    con.close()


def test_opportunities_without_a_known_contact_are_quarantined(tmp_path):
    folder = tmp_path / DAY
    write_csv(
        folder,
        "Contact.csv",
        CONTACT_HEADER,
        [
            ["0035g00000U8JZpAAN", "", "a@example.com", "2024-01-01", "", "false"],
            ["0035g00000EPFjbAAH", "", "d@example.com", "2024-01-02", "", "true"],  # deleted
        ],
    )
    write_csv(
        folder,
        "Opportunity.csv",
        OPPORTUNITY_HEADER,
        [
            ["0065g00000LQSAJAA5", "", "0035g00000U8JZpAAN", "P", "Closed Won", "10", "2025-01-01"],
            ["0065g00000aiXnkAAE", "", "", "P", "Closed Won", "20", "2025-01-02"],
            ["0065g00000U8Is2AAF", "", "0035g00000EPFjbAAH", "P", "Closed Won", "30", "2025-01-03"],
            [
                "0065g00000g8nprAAA",
                "",
                "0035g00000U8JZpAAN",
                "P",
                "Closed Won",
                "n/a",
                "2025-01-04",
            ],
        ],
    )
    con = connect()
    result = ingest(con, tmp_path, threshold=0.9)
    assert con.execute(
        "SELECT file, line_number, column_name, value, reason FROM raw.quarantine "
        "ORDER BY line_number"
    ).fetchall() == [
        ("Opportunity.csv", 3, None, None,
         "won opportunity without a ContactId or a contact of its AccountId"),
        ("Opportunity.csv", 4, "customer_id", "salesforce:0035g00000EPFjbAAH",
         "unknown customer"),
        ("Opportunity.csv", 5, "amount", "n/a", "unparseable money"),
    ]  # fmt: skip
    assert result.sources["salesforce"]["tables"]["orders"] == {
        "rows_mapped": 4,
        "rows_quarantined": 3,
        "rows_loaded": 1,
    }
    con.close()


TWOLAYOUT_YAML = """
system: twolayout
layouts:
  items:
    columns:
      item: {headers: [Item Ref], required: true}
      parent: {headers: [Parent Ref], required: true}
      who: {headers: [Who Mail], required: true}
    skip:
      - reason: child item
        when: parent IS NOT NULL
tables:
  customers:
    needs: [items]
    sql: customers.sql
"""

TWOLAYOUT_SQL = """
SELECT i.item AS _source_id, i.who AS email, '2025-01-01' AS signup_date,
       CAST((SELECT count(*) FROM items__all AS a
             WHERE a.parent = i.item AND a._skip = 'child item') AS VARCHAR) AS city,
       i._source_file, i._line_number
FROM items AS i
"""


def test_a_mapping_sees_the_skipped_rows_of_a_layout(tmp_path):
    """The framework addition the merged contacts need: `<layout>__all` holds every row of
    the layout, the skipped ones too, with the skip reason in `_skip`."""
    system = tmp_path / "systems" / "twolayout"
    system.mkdir(parents=True)
    (system / "system.yaml").write_text(TWOLAYOUT_YAML)
    (system / "customers.sql").write_text(TWOLAYOUT_SQL)
    write_csv(
        tmp_path / "exports" / DAY,
        "items.csv",
        ["Item Ref", "Parent Ref", "Who Mail"],
        [["1", "", "p@example.com"], ["2", "1", "q@example.com"], ["3", "1", "r@example.com"]],
    )
    write_csv(
        tmp_path / "exports" / DAY,
        "orders.csv",
        ["order_id", "customer_id", "order_date", "amount"],
        [],
    )
    con = connect()
    result = ingest(con, tmp_path / "exports", registry=load_registry([system]))
    assert result.sources["twolayout"]["skipped_reasons"] == {"child item": 2}
    assert con.execute("SELECT customer_id, city FROM raw.customers").fetchall() == [
        ("twolayout:1", "2")
    ]
    con.close()


# -- the whole job -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """The whole nightly job on the fixture export, once for the module."""
    return run_once(tmp_path_factory, FIXTURE)[0]


def test_marts_of_the_tricky_rows(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        got = {
            r[0][len("salesforce:") :]: r[1:]
            for r in con.execute(
                "SELECT customer_id, orders_count, net_revenue, signup_date, tenure_days, "
                "acquisition_channel, marketing_opt_in FROM marts.customer_features"
            ).fetchall()
        }
    finally:
        con.close()
    assert len(got) == 20
    # 250 + 80; signed up 2024-10-15, 167 days before 2025-03-31
    assert got["0035g00000U8JZpAAN"] == (
        2,
        Decimal("330.0000"),
        date(2024, 10, 15),
        167,
        "organic",
        False,
    )
    # the merged contact's 400 and the master's 100; signup of the merged one, 2024-06-01
    assert got["0035g00000NCFbaAAH"][:4] == (2, Decimal("500.0000"), date(2024, 6, 1), 303)
    assert got["0035g00000Oool8AAB"][:2] == (1, Decimal("220.0000"))  # 200 EUR x 1.1
    assert got["0035g00000LGlkoAAD"][:2] == (1, Decimal("75.0000"))  # 60 GBP x 1.25
    assert got["0035g00000DE0iGAAT"][:2] == (0, Decimal("0.0000"))  # lost
    assert got["0035g00000fribxAAA"][:2] == (1, Decimal("500.0000"))  # by its account
    assert got["0035g00000VJ7faAAD"][:2] == (1, Decimal("120.0000"))  # IsWon, stage Signed
