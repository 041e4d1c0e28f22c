"""HubSpot's CRM exports as downloaded: tests/fixtures/sources/hubspot/2025-03-31 holds
hubspot-crm-exports-all-contacts-2025-03-31.csv (22 contacts) and
hubspot-crm-exports-all-deals-2025-03-31.csv (22 deals, 15 of them won), with HubSpot's
property labels as headers.  Every expected value below is worked out by hand from those
files.

The last tests put the HubSpot, Salesforce and Stripe fixtures into one export: Ann Lee is
in all three (`ann.lee@example.com`, ` Ann.Lee@Example.com`, `ANN.LEE@EXAMPLE.COM ` and
two more Stripe customer objects) and is one customer.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.exports import write_csv
from tests.pipeline_runner import failure_messages, run_job
from tests.source_runs import connect, ingest, ingested_once, order, run_once

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
FIXTURE = FIXTURES / "hubspot"
DAY = "2025-03-31"
CONTACTS = f"hubspot-crm-exports-all-contacts-{DAY}.csv"
DEALS = f"hubspot-crm-exports-all-deals-{DAY}.csv"
NOT_WON = "deal not won (open or lost): not an order"


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def test_files_are_recognised_and_counted(raw):
    _, result = raw
    assert result.rows_quarantined == 0
    assert result.sources == {
        "hubspot": {
            "files": {CONTACTS: "hubspot/contacts", DEALS: "hubspot/deals"},
            "rows_read": 22 + 22,
            # 9005 and 9016 Closed Lost; 9006, 9014, 9015, 9020, 9021 still open
            "rows_skipped": 7,
            "skipped_reasons": {NOT_WON: 7},
            "tables": {
                "customers": {"rows_mapped": 22, "rows_quarantined": 0, "rows_loaded": 22},
                "orders": {"rows_mapped": 15, "rows_quarantined": 0, "rows_loaded": 15},
                # 101, 102, 106, 112 and 114 have a score; 108's rating is only "Promoter"
                "surveys": {"rows_mapped": 5, "rows_quarantined": 0, "rows_loaded": 5},
            },
        }
    }


def test_a_won_deal_is_an_order_and_a_deal_not_won_is_not(raw):
    con, _ = raw
    assert order(con, "hubspot-deal-9001") == (
        "hubspot:101",
        datetime(2025, 1, 10, 12),
        Decimal("150.0000"),
        None,  # no currency column: the base currency
        "completed",
        2,
    )
    assert order(con, "hubspot-deal-9005") is None  # Closed Lost
    assert order(con, "hubspot-deal-9006") is None  # Appointment Scheduled
    assert con.execute("SELECT count(*), sum(amount) FROM raw.orders").fetchone() == (
        15,
        # 150 + 300 + 1200 + 80 + 60 + 95.50 + 1250 + 40 + 70 + 70 + 200 + 25 + 45 + 500 + 99.99
        Decimal("4185.4900"),
    )


def test_deal_customers_amounts_and_dates(raw):
    con, _ = raw
    assert order(con, "hubspot-deal-9009")[2] == Decimal("1250.0000")  # "1,250.00"
    # no Associated Contact IDs: the contact whose Associated Deal IDs name it (107)
    assert order(con, "hubspot-deal-9008")[:3] == (
        "hubspot:107",
        datetime(2025, 3, 5, 10),
        Decimal("95.5000"),
    )
    # two associated contacts (116;117): the first one's order
    assert order(con, "hubspot-deal-9013")[0] == "hubspot:116"
    assert order(con, "hubspot-deal-9022")[1] == datetime(2025, 3, 30, 22, 15)


def test_contacts_become_customers_with_their_channel(raw):
    con, _ = raw
    got = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT customer_id, email, signup_date, acquisition_channel, marketing_opt_in, "
            "_line_number FROM raw.customers"
        ).fetchall()
    }
    assert len(got) == 22
    assert got["hubspot:101"] == ("ann.lee@example.com", date(2024, 11, 2), "referral", None, 2)
    # " Chloe.Park@Example.com " is trimmed (the hash lower-cases it)
    assert got["hubspot:103"][:3] == ("Chloe.Park@Example.com", date(2024, 12, 1), "paid_search")
    channels = {cid: v[2] for cid, v in got.items()}
    assert channels["hubspot:102"] == "organic"  # Organic Search
    assert channels["hubspot:104"] == "email"  # Email Marketing
    assert channels["hubspot:105"] == "social"  # Organic Social
    assert channels["hubspot:106"] == "paid_social"
    assert channels["hubspot:107"] == "organic"  # Direct Traffic
    assert channels["hubspot:108"] == "other"  # Other Campaigns
    assert channels["hubspot:109"] == "other"  # Offline Sources
    assert channels["hubspot:111"] == "other"  # AI Referrals
    assert channels["hubspot:115"] is None  # no Original Source
    assert got["hubspot:113"][:2] == (None, date(2025, 2, 5))  # a contact without an email
    names = con.execute(
        "SELECT first_name, last_name FROM raw.customers WHERE customer_id = 'hubspot:101'"
    ).fetchone()
    assert names == ("Ann", "Lee")  # PII stays in raw; staging drops it


def test_the_last_nps_answer_is_a_survey(raw):
    con, _ = raw
    assert con.execute(
        "SELECT response_id, customer_id, responded_at, nps, csat, _line_number "
        "FROM raw.surveys ORDER BY response_id"
    ).fetchall() == [
        ("hubspot-nps-101-20250201T083000", "hubspot:101", datetime(2025, 2, 1, 8, 30), 9, None, 2),
        ("hubspot-nps-102-20250215T140000", "hubspot:102", datetime(2025, 2, 15, 14), 6, None, 3),
        ("hubspot-nps-106-20250301T100000", "hubspot:106", datetime(2025, 3, 1, 10), 10, None, 7),
        ("hubspot-nps-112-20250320T170000", "hubspot:112", datetime(2025, 3, 20, 17), 3, None, 13),
        ("hubspot-nps-114-20250220T120000", "hubspot:114", datetime(2025, 2, 20, 12), 8, None, 15),
    ]


# -- variants written in the test ---------------------------------------------------------

API_CONTACTS = [
    "hs_object_id",
    "email",
    "firstname",
    "lastname",
    "createdate",
    "lifecyclestage",
    "hs_analytics_source",
    "hs_feedback_last_nps_rating",
    "hs_feedback_last_nps_rating_number",
    "hs_feedback_last_survey_date",
]
API_DEALS = [
    "hs_object_id",
    "dealname",
    "dealstage",
    "closedate",
    "amount",
    "pipeline",
    "hs_is_closed_won",
    "Associated Contact IDs",
]


def test_internal_property_names_and_the_closed_won_flag(tmp_path):
    folder = tmp_path / DAY
    write_csv(
        folder,
        "contacts.csv",
        API_CONTACTS,
        [
            # the API's values: internal source names, ISO times in UTC
            ["501", "a@example.com", "A", "B", "2025-01-02T03:04:05.000Z", "customer",
             "ORGANIC_SEARCH", "promoter", "9", "2025-03-01T10:00:00Z"],
            ["502", "b@example.com", "C", "D", "2025-01-05T23:59:59Z", "lead",
             "REFERRALS", "", "", ""],
        ],
    )  # fmt: skip
    write_csv(
        folder,
        "deals.csv",
        API_DEALS,
        [
            ["601", "Plan", "closedwon", "2025-02-01T12:00:00.000Z", "100", "default", "", "501"],
            # a custom pipeline's won stage: HubSpot's own flag says it is won
            ["602", "Renewal", "1234567", "2025-03-01T12:00:00.000Z", "40", "renewals",
             "true", "502"],
            # flag false wins over the label
            ["603", "Plan", "closedwon", "2025-03-02T12:00:00.000Z", "70", "default", "false",
             "502"],
            ["604", "Plan", "appointmentscheduled", "2025-04-01T12:00:00.000Z", "80", "default",
             "", "502"],
        ],
    )  # fmt: skip
    con = connect()
    result = ingest(con, tmp_path)
    assert result.sources["hubspot"]["files"] == {
        "contacts.csv": "hubspot/contacts",
        "deals.csv": "hubspot/deals",
    }
    assert result.sources["hubspot"]["skipped_reasons"] == {NOT_WON: 2}
    assert con.execute(
        "SELECT customer_id, signup_date, acquisition_channel FROM raw.customers ORDER BY 1"
    ).fetchall() == [
        ("hubspot:501", date(2025, 1, 2), "organic"),
        ("hubspot:502", date(2025, 1, 5), "referral"),
    ]
    assert con.execute(
        "SELECT order_id, customer_id, order_date, amount FROM raw.orders ORDER BY 1"
    ).fetchall() == [
        ("hubspot-deal-601", "hubspot:501", datetime(2025, 2, 1, 12), Decimal("100.0000")),
        ("hubspot-deal-602", "hubspot:502", datetime(2025, 3, 1, 12), Decimal("40.0000")),
    ]
    # the numeric twin of the rating is used: the enumeration says only "promoter"
    assert con.execute("SELECT customer_id, nps FROM raw.surveys").fetchall() == [
        ("hubspot:501", 9)
    ]
    con.close()


def test_won_stages_named_in_the_manifest(tmp_path):
    folder = tmp_path / DAY
    write_csv(
        folder,
        CONTACTS,
        ["Record ID", "Email", "Create Date"],
        [["1", "x@example.com", "2025-01-01 10:00"]],
    )
    write_csv(
        folder,
        DEALS,
        ["Record ID", "Deal Name", "Deal Stage", "Close Date", "Amount", "Associated Contact IDs"],
        [
            ["11", "Plan", "Closed Won", "2025-02-01 10:00", "10", "1"],
            ["12", "Renewal", "Renewed", "2025-02-02 10:00", "20", "1"],
            ["13", "Upsell", " signed ", "2025-02-03 10:00", "30", "1"],
            ["14", "Plan", "Closed Lost", "2025-02-04 10:00", "40", "1"],
        ],
    )
    (folder / "manifest.json").write_text(
        json.dumps({"mode": "full", "options": {"hubspot": {"won_stages": "renewed; Signed"}}})
    )
    con = connect()
    ingest(con, tmp_path)
    assert con.execute("SELECT order_id, amount FROM raw.orders ORDER BY 1").fetchall() == [
        ("hubspot-deal-11", Decimal("10.0000")),
        ("hubspot-deal-12", Decimal("20.0000")),
        ("hubspot-deal-13", Decimal("30.0000")),
    ]
    con.close()


def test_unmappable_rows_are_quarantined_with_their_line(tmp_path):
    folder = tmp_path / DAY
    write_csv(
        folder,
        CONTACTS,
        [
            "Record ID",
            "Email",
            "Create Date",
            "Original Source",
            "Last NPS survey rating",
            "Last NPS survey date",
        ],
        [
            ["1", "x@example.com", "2025-01-01 10:00", "Organic Search", "11", "2025-03-01 10:00"],
            ["2", "y@example.com", "2025-01-02 10:00", "Carrier Pigeon", "", ""],
        ],
    )
    write_csv(
        folder,
        DEALS,
        ["Record ID", "Deal Name", "Deal Stage", "Close Date", "Amount", "Associated Contact IDs"],
        [
            ["11", "Plan", "Closed Won", "2025-02-01 10:00", "10", "1"],
            ["12", "Plan", "Closed Won", "2025-02-02 10:00", "20", ""],  # nobody
            ["13", "Plan", "Closed Won", "2025-02-03 10:00", "30", "999"],  # no such contact
            ["14", "Plan", "Closed Won", "31/02/2025", "40", "1"],
        ],
    )
    con = connect()
    result = ingest(con, tmp_path, threshold=1.0)
    assert con.execute(
        "SELECT file, line_number, column_name, value, reason, source_system FROM raw.quarantine "
        "ORDER BY file, line_number"
    ).fetchall() == [
        (CONTACTS, 2, "nps", "11", "out of range (must be <= 10)", "hubspot"),
        (CONTACTS, 3, "acquisition_channel", "Carrier Pigeon", "value not allowed", "hubspot"),
        (DEALS, 3, None, None, "won deal without an associated contact (Associated Contact IDs)",
         "hubspot"),
        (DEALS, 4, "customer_id", "hubspot:999", "unknown customer", "hubspot"),
        (DEALS, 5, "order_date", "31/02/2025", "unparseable timestamp", "hubspot"),
    ]  # fmt: skip
    assert result.sources["hubspot"]["tables"]["orders"] == {
        "rows_mapped": 4,
        "rows_quarantined": 3,
        "rows_loaded": 1,
    }
    con.close()


# -- the whole job -------------------------------------------------------------------------


def features(warehouse: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT customer_id, orders_count, net_revenue, signup_date, tenure_days, "
                "acquisition_channel, nps_latest, nps_class FROM marts.customer_features"
            ).fetchall()
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """The whole nightly job on the fixture export, once for the module."""
    return run_once(tmp_path_factory, FIXTURE)[0]


def test_marts_of_the_tricky_rows(warehouse):
    got = features(warehouse)
    assert len(got) == 22
    # two won deals (2025-01-10, 2025-03-01); signed up 2024-11-02, 149 days before 03-31
    assert got["hubspot:101"] == (
        2,
        Decimal("450.0000"),
        date(2024, 11, 2),
        149,
        "referral",
        9,
        "promoter",
    )
    assert got["hubspot:104"][:2] == (0, Decimal("0.0000"))  # the lost deal is no revenue
    assert got["hubspot:105"][:2] == (0, Decimal("0.0000"))  # the open deal neither
    assert got["hubspot:107"][:2] == (1, Decimal("95.5000"))
    assert got["hubspot:108"][5:] == (None, None)  # rating "Promoter" without a score
    assert got["hubspot:110"][:2] == (1, Decimal("1250.0000"))
    assert got["hubspot:112"][5:] == (3, "detractor")
    assert got["hubspot:114"][:2] == (2, Decimal("140.0000"))
    assert got["hubspot:116"][:2] == (1, Decimal("200.0000"))
    assert got["hubspot:117"][:2] == (0, Decimal("0.0000"))  # second contact of deal 9013
    assert got["hubspot:121"][2:4] == (date(2025, 3, 30), 1)


# -- one person in HubSpot, Salesforce and Stripe ------------------------------------------


def mixed_export(root: Path) -> Path:
    """The three systems' fixture files in one export folder (fx_rates.csv is the same in
    the Salesforce and Stripe fixtures)."""
    folder = root / DAY
    folder.mkdir(parents=True)
    for system in ("hubspot", "salesforce", "stripe"):
        for path in sorted((FIXTURES / system / DAY).iterdir()):
            shutil.copyfile(path, folder / path.name)
    return root


def test_one_email_in_three_systems_is_one_customer(tmp_path):
    con = connect()
    result = ingest(con, mixed_export(tmp_path / "exports"))
    assert con.execute(
        "SELECT source_system, source_id FROM raw.customer_identities "
        "WHERE customer_id = 'hubspot:101' ORDER BY 1, 2"
    ).fetchall() == [
        ("hubspot", "101"),
        ("salesforce", "0035g00000U8JZpAAN"),
        ("stripe", "cus_Qshl8IlC7Be6Ws"),  # the EU account's customer (payments.csv)
        ("stripe", "cus_Rc3j27xdcg2lML"),
        ("stripe", "cus_RzgeonyLGcTJFi"),
    ]
    # one customers row: HubSpot's (precedence 30), the earliest signup (Salesforce's)
    assert con.execute(
        "SELECT customer_id, email, signup_date, acquisition_channel, _source_system "
        "FROM raw.customers WHERE customer_id = 'hubspot:101'"
    ).fetchall() == [
        ("hubspot:101", "ann.lee@example.com", date(2024, 10, 15), "referral", "hubspot")
    ]
    assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (22 + 19 + 37,)
    assert {
        s: c["tables"]["customers"].get("rows_merged", 0) for s, c in result.sources.items()
    } == {
        "hubspot": 0,
        "salesforce": 1,  # Ann
        "stripe": 3,  # Ann's three customer objects
    }
    assert con.execute(
        "SELECT _source_system, count(*) FROM raw.orders WHERE customer_id = 'hubspot:101' "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("hubspot", 2), ("salesforce", 2), ("stripe", 4)]
    con.close()


def test_marts_of_the_mixed_export(tmp_path):
    exports = mixed_export(tmp_path / "exports")
    wh = tmp_path / "warehouse.duckdb"
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    got = features(wh)
    assert len(got) == 78
    # HubSpot 150 + 300, Salesforce 250 + 80, Stripe 49 + 19 USD and 12.50 + 1000.00 EUR
    # at 1.1: 848 + 1113.75; eight purchase days; signup 2024-10-15, 167 days before 03-31
    assert got["hubspot:101"] == (
        8,
        Decimal("1961.7500"),
        date(2024, 10, 15),
        167,
        "referral",
        9,
        "promoter",
    )
    con = duckdb.connect(str(wh), read_only=True)
    try:
        # no email, name or phone in staging or the marts: no text value holds one
        leaks = []
        for schema, table, column in con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema IN ('staging', 'marts') AND data_type = 'VARCHAR'"
        ).fetchall():
            (n,) = con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" ILIKE \'%example.%\' '
                f"OR \"{column}\" IN ('Ann', 'Lee', 'Ann Lee')"
            ).fetchone()
            if n:
                leaks.append((schema, table, column))
        assert leaks == []
    finally:
        con.close()
