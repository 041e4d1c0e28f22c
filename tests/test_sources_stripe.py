"""Stripe dashboard exports: tests/fixtures/sources/stripe/2025-03-31 holds
unified_payments.csv (24 payments of a US account, the current header), payments.csv (20
payments of a second, EU account: the older header `Created (UTC)` and German amounts such
as "1.234,50"), unified_customers.csv (22 customer objects) and fx_rates.csv (EUR 1.1,
GBP 1.25).  Every expected value below is worked out by hand from those files.

Payments are looked up by file and line: their ids are Stripe's random ones.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import ExportRefused
from pipelines.sources import DEFAULT_EMAIL_SALT
from tests.exports import write_csv
from tests.source_runs import connect, ingest, ingested_once, run_once

FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "stripe"
DAY = "2025-03-31"
US, EU = "unified_payments.csv", "payments.csv"
FAILED = "failed payment (Status Failed or Blocked): no money moved, not revenue"
PAYMENT_HEADER = [
    "id",
    "Created date (UTC)",
    "Amount",
    "Amount Refunded",
    "Currency",
    "Status",
    "Customer ID",
    "Customer Email",
]
CUSTOMER_HEADER = ["id", "Description", "Email", "Name", "Created (UTC)"]

ANN = "stripe:cus_Qshl8IlC7Be6Ws"  # her EU-account customer leads: payments.csv sorts first


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def payment(con, file: str, line: int) -> tuple | None:
    return con.execute(
        "SELECT customer_id, order_date, amount, currency, status FROM raw.orders "
        "WHERE _source_file = ? AND _line_number = ?",
        [file, line],
    ).fetchone()


def test_files_are_recognised_and_counted(raw):
    _, result = raw
    assert result.rows_quarantined == 0
    assert result.sources == {
        "stripe": {
            "files": {
                EU: "stripe/payments",
                "unified_customers.csv": "stripe/customers",
                US: "stripe/payments",
            },
            "rows_read": 20 + 22 + 24,
            "rows_skipped": 4,  # two failed payments in each account
            "skipped_reasons": {FAILED: 4},
            "tables": {
                # 22 customer objects + 18 payers without one (17 of the EU account, one
                # US guest); Ann's second object and her EU customer merged into one
                "customers": {
                    "rows_mapped": 40,
                    "rows_merged": 2,
                    "rows_quarantined": 0,
                    "rows_loaded": 38,
                },
                "orders": {"rows_mapped": 40, "rows_quarantined": 0, "rows_loaded": 40},
            },
        }
    }
    assert result.tables["fx_rates"].rows_loaded == 2


def test_a_failed_payment_is_not_an_order(raw):
    con, _ = raw
    assert payment(con, US, 4) is None  # Cal's card declined for insufficient funds...
    assert payment(con, US, 5) == (  # ...and the retry two minutes later went through
        "stripe:cus_Rz4soCmZ9cpvnp",
        datetime(2025, 1, 8, 9, 15, 2),
        Decimal("30.0000"),
        "USD",
        "completed",
    )
    assert payment(con, US, 14) is None  # Lou: declined, his only payment
    assert con.execute(
        "SELECT count(*) FROM raw.orders WHERE customer_id = 'stripe:cus_RIapYHZaNAR3zl'"
    ).fetchone() == (0,)
    # Sven (EU) only failed: not even a customer
    assert con.execute(
        "SELECT count(*) FROM raw.customers WHERE email = 'sven.ernst@example.com'"
    ).fetchone() == (0,)


def test_refunds_are_on_the_payment_row(raw):
    con, _ = raw
    # refunded in full: status refunded, amount the payment's
    assert payment(con, US, 6)[2:] == (Decimal("25.0000"), "USD", "refunded")
    # 20.00 of 80.00 refunded: 60.00 completed
    assert payment(con, US, 8)[2:] == (Decimal("60.0000"), "USD", "completed")
    assert payment(con, EU, 6)[2:] == (Decimal("99.9000"), "EUR", "refunded")
    assert payment(con, EU, 11)[2:] == (Decimal("100.0000"), "EUR", "completed")  # 120 - 20


def test_amounts_with_a_decimal_comma(raw):
    con, _ = raw
    assert payment(con, EU, 2)[1:] == (
        datetime(2025, 2, 20, 14),  # Created (UTC) without seconds
        Decimal("12.5000"),  # "12,50"
        "EUR",
        "completed",
    )
    assert payment(con, EU, 3)[2] == Decimal("1000.0000")  # "1.234,50" - "234,50"
    assert payment(con, EU, 13)[2] == Decimal("2500.0000")  # "2.500,00"


def test_other_currencies_and_statuses(raw):
    con, _ = raw
    # what the customer paid, not the Converted Amount (43.48 / 254.10 USD)
    assert payment(con, US, 9)[2:] == (Decimal("40.0000"), "EUR", "completed")
    assert payment(con, US, 17)[2:] == (Decimal("200.0000"), "GBP", "completed")
    assert payment(con, US, 10)[2:] == (Decimal("55.0000"), "USD", "pending")  # Uncaptured
    assert payment(con, US, 11)[2:] == (Decimal("35.0000"), "USD", "cancelled")  # Canceled


def test_customers_by_id_and_by_email(raw):
    con, _ = raw
    # Ann: two customer objects ("ANN.LEE@EXAMPLE.COM ", " ann.lee@example.com") and a
    # customer of the EU account ("ann.lee@example.COM") are one customer, whose signup is
    # the earliest (the first object's Created, 2024-12-01)
    assert con.execute(
        "SELECT source_id, customer_id FROM raw.customer_identities "
        "WHERE customer_id = ? ORDER BY 1",
        [ANN],
    ).fetchall() == [
        ("cus_Qshl8IlC7Be6Ws", ANN),
        ("cus_Rc3j27xdcg2lML", ANN),
        ("cus_RzgeonyLGcTJFi", ANN),
    ]
    assert con.execute(
        "SELECT signup_date, _source_file, _line_number FROM raw.customers WHERE customer_id = ?",
        [ANN],
    ).fetchone() == (date(2024, 12, 1), EU, 2)
    assert [payment(con, US, line)[0] for line in (2, 3)] == [ANN, ANN]
    assert [payment(con, EU, line)[0] for line in (2, 3)] == [ANN, ANN]
    # a guest payment (no Customer ID) of "Eli.Hunt@Example.com": the customer object
    assert payment(con, US, 7)[0] == "stripe:cus_RxdUcl1MhOoSfA"
    # a guest nobody knows is a customer named by the email hash; signup = the payment day
    guest = (
        "stripe:"
        + hashlib.sha256((DEFAULT_EMAIL_SALT + "new.guest@example.com").encode()).hexdigest()[:24]
    )
    assert payment(con, US, 24)[0] == guest
    assert con.execute(
        "SELECT signup_date, _source_file, _line_number FROM raw.customers WHERE customer_id = ?",
        [guest],
    ).fetchone() == (date(2025, 3, 20), US, 24)
    # a customer object without an email, and its payment
    assert payment(con, US, 22)[:3] == (
        "stripe:cus_RuEIOejp2nnERN",
        datetime(2025, 3, 11, 10),
        Decimal("500.0000"),
    )
    assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (38,)


def test_names_and_cards_are_not_kept(raw):
    con, _ = raw
    assert con.execute(
        "SELECT count(*) FROM raw.customers WHERE first_name IS NOT NULL OR last_name IS NOT NULL"
    ).fetchone() == (0,)
    assert con.execute("SELECT DISTINCT _extra FROM raw.orders").fetchall() == [(None,)]
    # a metadata column of the customers export is kept in _extra; names are not
    assert con.execute(
        "SELECT DISTINCT unnest(json_keys(_extra)) FROM raw.customers"
    ).fetchall() == [("tier (metadata)",)]
    assert con.execute(
        "SELECT _extra FROM raw.customers WHERE customer_id = 'stripe:cus_RuEIOejp2nnERN'"
    ).fetchone() == ('{"tier (metadata)":"wholesale"}',)


# -- variants written in the test ---------------------------------------------------------


def test_a_stripe_customers_file_named_customers_csv_is_the_contract_file(tmp_path):
    """customers.csv is the contract's file name: a Stripe customers export saved under it
    is read as a contract file and refused (docs/sources.md, Stripe, says what to do)."""
    folder = tmp_path / DAY
    write_csv(folder, "customers.csv", CUSTOMER_HEADER, [["cus_1", "", "a@example.com", "A", ""]])
    write_csv(folder, US, PAYMENT_HEADER, [])
    con = connect()
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path)
    assert (refused.value.file, refused.value.reason) == (
        "customers.csv",
        "required column(s) missing: customer_id, signup_date",
    )
    con.close()


def test_a_dot_decimal_file_with_thousands_separators(tmp_path):
    folder = tmp_path / DAY
    write_csv(folder, "unified_customers.csv", CUSTOMER_HEADER, [])
    write_csv(
        folder,
        US,
        [*PAYMENT_HEADER, "Captured"],
        [
            ["ch_1", "2025-03-01 10:00:00", "1,234.56", "34.56", "usd", "Paid", "", "a@x.example",
             "true"],
            ["ch_2", "2025-03-02 10:00:00", "12.50", "0.00", "usd", "Paid", "", "a@x.example",
             "true"],
            # a payment whose refund covers it all, status not yet updated: refunded
            ["ch_3", "2025-03-03 10:00:00", "20.00", "20.00", "usd", "Paid", "", "a@x.example",
             "true"],
            # authorised, not captured: no money yet
            ["ch_4", "2025-03-04 10:00:00", "15.00", "0.00", "usd", "Paid", "", "a@x.example",
             "false"],
        ],
    )  # fmt: skip
    con = connect()
    ingest(con, tmp_path)
    assert con.execute("SELECT order_id, amount, status FROM raw.orders ORDER BY 1").fetchall() == [
        ("ch_1", Decimal("1200.0000"), "completed"),
        ("ch_2", Decimal("12.5000"), "completed"),
        ("ch_3", Decimal("20.0000"), "refunded"),
        ("ch_4", Decimal("15.0000"), "pending"),
    ]
    con.close()


def test_unmappable_payments_are_quarantined(tmp_path):
    folder = tmp_path / DAY
    write_csv(
        folder,
        "unified_customers.csv",
        CUSTOMER_HEADER,
        [["cus_1", "", "a@example.com", "A", "2025-01-01 10:00"]],
    )
    write_csv(
        folder,
        US,
        PAYMENT_HEADER,
        [
            ["ch_1", "2025-03-01 10:00:00", "10.00", "0.00", "usd", "Paid", "cus_1", ""],
            ["ch_2", "2025-03-02 10:00:00", "ten", "0.00", "usd", "Paid", "cus_1", ""],
            ["ch_3", "2025-03-03 10:00:00", "10.00", "n/a", "usd", "Paid", "cus_1", ""],
            ["ch_4", "2025-03-04 10:00:00", "10.00", "0.00", "usd", "Disputed", "cus_1", ""],
            # a customer of no customers file: a customer all the same, from the payment
            ["ch_5", "2025-03-05 10:00:00", "10.00", "0.00", "usd", "Paid", "cus_9", ""],
        ],
    )
    con = connect()
    result = ingest(con, tmp_path, threshold=0.9)
    assert con.execute(
        "SELECT line_number, column_name, value, reason FROM raw.quarantine ORDER BY 1"
    ).fetchall() == [
        (3, "amount", "ten", "unparseable money"),
        (4, None, None, "unparseable money in Amount Refunded"),
        (5, "status", "Disputed", "value not allowed"),
    ]
    assert result.sources["stripe"]["tables"]["orders"] == {
        "rows_mapped": 5,
        "rows_quarantined": 3,
        "rows_loaded": 2,
    }
    assert con.execute(
        "SELECT customer_id, signup_date, _source_file, _line_number FROM raw.customers ORDER BY 1"
    ).fetchall() == [
        ("stripe:cus_1", date(2025, 1, 1), "unified_customers.csv", 2),
        ("stripe:cus_9", date(2025, 3, 5), US, 6),
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
            r[0]: r[1:]
            for r in con.execute(
                "SELECT customer_id, orders_count, net_revenue, refund_rate, signup_date, "
                "tenure_days FROM marts.customer_features"
            ).fetchall()
        }
    finally:
        con.close()
    assert len(got) == 38
    # 49 + 19 USD, 12.50 + 1000.00 EUR x 1.1 = 1113.75; signup 2024-12-01, 120 days
    assert got[ANN] == (4, Decimal("1181.7500"), 0.0, date(2024, 12, 1), 120)
    assert got["stripe:cus_RKnA1hEDCM4PmB"][:3] == (0, Decimal("0.0000"), 1.0)  # refunded
    assert got["stripe:cus_RqFdpRaj71FtQU"][:3] == (1, Decimal("60.0000"), 0.0)  # partial
    assert got["stripe:cus_RwOgSBEkxGZG2S"][:2] == (1, Decimal("44.0000"))  # 40 EUR
    assert got["stripe:cus_RNloPAmXXndI9l"][:2] == (1, Decimal("250.0000"))  # 200 GBP
    assert got["stripe:cus_RYE9B2rANN76De"][:3] == (0, Decimal("0.0000"), None)  # uncaptured
    assert got["stripe:cus_RYtZaEkoMxrRVF"][:3] == (0, Decimal("0.0000"), None)  # canceled
    assert got["stripe:cus_RIapYHZaNAR3zl"][:3] == (0, Decimal("0.0000"), None)  # failed
    assert got["stripe:cus_Rz4soCmZ9cpvnp"][:2] == (1, Decimal("30.0000"))  # failed, retried
    assert got["stripe:cus_QEEciXvC57vvtI"][:3] == (0, Decimal("0.0000"), 1.0)  # EU refund
    assert got["stripe:cus_Qw5Vq7cf5PUZqQ"][:2] == (1, Decimal("2750.0000"))  # 2.500,00 EUR
