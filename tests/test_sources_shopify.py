"""Shopify's admin exports as downloaded: tests/fixtures/sources/shopify/2024-06-01 holds
customers_export.csv (20 customers, current layout, one metafield column) and
orders_export.csv (17 orders on 22 line-item rows), both with Shopify's full header rows,
plus an fx_rates.csv (EUR 1.1) for the order in euros.  Every expected value below is
worked out by hand from those files.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import ExportRefused
from tests.exports import write_csv
from tests.source_runs import connect, ingest, ingested_once, run_once
from tests.source_runs import order as raw_order

FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "shopify"
DAY = date(2024, 6, 1)
ORDER_COLUMNS = [
    "Name",
    "Email",
    "Financial Status",
    "Currency",
    "Subtotal",
    "Total",
    "Refunded Amount",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
]
ORDER_COLUMNS_WITH_DISCOUNT = (
    "customer_id, order_date, amount, currency, status, discount_amount, _line_number"
)


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def order(con, order_id: str) -> tuple | None:
    """Its raw order, with the discount."""
    return raw_order(con, order_id, ORDER_COLUMNS_WITH_DISCOUNT)


def test_files_are_recognised_and_counted(raw):
    _, result = raw
    assert result.rows_quarantined == 0
    assert result.sources == {
        "shopify": {
            "files": {
                "customers_export.csv": "shopify/customers",
                "orders_export.csv": "shopify/orders",
            },
            "rows_read": 20 + 22,
            # #1001 and #1013 and #1017 have one more line item, #1003 two more
            "rows_skipped": 5,
            "skipped_reasons": {
                "line item after its order's first row (the order's fields are on the first row)": 5
            },
            "tables": {
                # 7020 is 7001 (one email): merged, so 19 customers
                "customers": {
                    "rows_mapped": 20,
                    "rows_merged": 1,
                    "rows_quarantined": 0,
                    "rows_loaded": 19,
                },
                "orders": {"rows_mapped": 17, "rows_quarantined": 0, "rows_loaded": 17},
            },
        }
    }
    assert result.tables["fx_rates"].rows_loaded == 1  # a contract file beside them


def test_multi_line_item_order_is_one_order_from_its_first_row(raw):
    con, _ = raw
    # #1001: two line items (2 x 15.00 + 20.00); Subtotal 50.00, shipping and tax apart
    assert order(con, "#1001") == (
        "shopify:7001",
        datetime(2024, 1, 5, 10),
        Decimal("50.0000"),
        "USD",
        "completed",
        Decimal("0.0000"),
        2,
    )
    # #1003: three rows, lines 5-7; partially refunded 25.00 of 80.00 -> 55.00
    assert order(con, "#1003")[2:5] == (Decimal("55.0000"), "USD", "completed")
    assert order(con, "#1003")[6] == 5
    assert con.execute("SELECT count(*) FROM raw.orders").fetchone() == (17,)


def test_refunds_voids_cancellations_and_pending_statuses(raw):
    con, _ = raw
    # refund of 35.00 (shipping included) on a 20.00 subtotal: floored at 0
    assert order(con, "#1011")[2:5] == (Decimal("0.0000"), "USD", "completed")
    # voided -> cancelled, amount the subtotal
    assert order(con, "#1004")[2:5] == (Decimal("40.0000"), "USD", "cancelled")
    # Cancelled at set (financial status refunded): cancelled wins
    assert order(con, "#1006")[2:5] == (Decimal("60.0000"), "USD", "cancelled")
    assert order(con, "#1007")[2:5] == (Decimal("45.0000"), "USD", "refunded")
    assert [order(con, o)[4] for o in ("#1009", "#1012", "#1014")] == ["pending"] * 3


def test_offsets_become_utc_and_another_currency_is_kept(raw):
    con, _ = raw
    # 2024-02-01 23:30 -0200 is the next day in UTC
    assert order(con, "#1005")[:2] == ("shopify:7001", datetime(2024, 2, 2, 1, 30))
    assert order(con, "#1010")[1] == datetime(2024, 5, 20, 6, 30)  # 12:00 +0530
    assert order(con, "#1014")[1] == datetime(2024, 4, 10, 1)  # 10:00 +0900
    assert order(con, "#1008")[1:4] == (datetime(2024, 3, 1, 10), Decimal("100.0000"), "EUR")
    assert order(con, "#1010")[5] == Decimal("10.0000")  # Discount Amount


def test_one_email_in_two_cases_is_one_customer(raw):
    con, _ = raw
    # 7001 ann@example.com (yes) and 7020 " ANN@Example.com " (no): one row, 7001's line;
    # signup = first order (#1001, 2024-01-05); one opt-out is an opt-out
    assert con.execute(
        "SELECT customer_id, email, signup_date, marketing_opt_in, country, _line_number, "
        "_extra FROM raw.customers WHERE customer_id = 'shopify:7001'"
    ).fetchone() == (
        "shopify:7001",
        "ann@example.com",
        date(2024, 1, 5),
        False,
        "US",
        2,
        '{"Loyalty tier (customer.metafields.custom.loyalty_tier)":"gold"}',
    )
    assert con.execute(
        "SELECT source_id, customer_id FROM raw.customer_identities WHERE source_id IN "
        "('7001', '7020') ORDER BY 1"
    ).fetchall() == [("7001", "shopify:7001"), ("7020", "shopify:7001")]


def test_signup_is_the_first_order_else_the_first_export(raw):
    con, _ = raw
    got = dict(con.execute("SELECT customer_id, signup_date FROM raw.customers").fetchall())
    assert len(got) == 19
    assert got["shopify:7002"] == date(2024, 1, 10)  # 09:30 -0500 = 14:30 UTC, same day
    assert got["shopify:7004"] == date(2024, 1, 25)  # a voided order is still a first order
    assert got["shopify:7009"] == date(2024, 5, 25)
    # no order (and 7018 without an email to find one by): the export's date
    for cid in ("shopify:7015", "shopify:7016", "shopify:7017", "shopify:7018", "shopify:7019"):
        assert got[cid] == DAY


def test_no_personal_address_fields_are_kept(raw):
    con, _ = raw
    extras = con.execute("SELECT DISTINCT _extra FROM raw.orders").fetchall()
    assert extras == [(None,)]  # every orders column is declared; none lands in _extra
    keys = con.execute("SELECT DISTINCT unnest(json_keys(_extra)) FROM raw.customers").fetchall()
    assert keys == [("Loyalty tier (customer.metafields.custom.loyalty_tier)",)]


def test_older_customers_layout_without_customer_id(tmp_path):
    folder = tmp_path / "2024-06-01"
    write_csv(
        folder,
        "customers_export.csv",
        # the older layout's header, as Shopify wrote it
        "First Name,Last Name,Email,Accepts Marketing,Company,Address1,Address2,City,"
        "Province,Province Code,Country,Country Code,Zip,Phone,Total Spent,Total Orders,"
        "Tags,Note,Tax Exempt".split(","),
        [
            [
                "Ann",
                "Lee",
                "Ann@Example.com",
                "yes",
                "",
                "1 Main",
                "",
                "Springfield",
                "Illinois",
                "IL",
                "United States",
                "US",
                "'62701",
                "",
                "50.00",
                "1",
                "",
                "",
                "no",
            ],
        ],
    )
    write_csv(
        folder,
        "orders_export.csv",
        ORDER_COLUMNS,
        [
            [
                "#1",
                "ann@example.com",
                "paid",
                "USD",
                "50.00",
                "50.00",
                "0.00",
                "2024-03-01 10:00:00 +0000",
                "1",
                "Mug",
            ]
        ],
    )
    con = connect()
    result = ingest(con, tmp_path, 0.05)
    assert result.sources["shopify"]["files"]["customers_export.csv"] == "shopify/customers_legacy"
    (cid,) = con.execute("SELECT customer_id FROM raw.customers").fetchone()
    assert cid.startswith("shopify:") and len(cid) == len("shopify:") + 24
    assert "ann" not in cid.lower()
    assert con.execute("SELECT customer_id, amount FROM raw.orders").fetchall() == [
        (cid, Decimal("50.0000"))
    ]
    con.close()


def test_order_of_an_unknown_email_and_a_bad_refund_are_quarantined(tmp_path):
    folder = tmp_path / "2024-06-01"
    shutil.copy(FIXTURE / "2024-06-01" / "customers_export.csv", folder.parent / "c.csv")
    folder.mkdir()
    shutil.move(folder.parent / "c.csv", folder / "customers_export.csv")
    write_csv(
        folder,
        "orders_export.csv",
        ORDER_COLUMNS,
        [
            [
                "#1",
                "ann@example.com",
                "paid",
                "USD",
                "10.00",
                "10.00",
                "",
                "2024-03-01 10:00:00 +0000",
                "1",
                "A",
            ],
            [
                "#2",
                "stranger@example.com",
                "paid",
                "USD",
                "10.00",
                "10.00",
                "",
                "2024-03-01 10:00:00 +0000",
                "1",
                "B",
            ],
            [
                "#3",
                "bob@example.com",
                "partially_refunded",
                "USD",
                "10.00",
                "10.00",
                "n/a",
                "2024-03-01 10:00:00 +0000",
                "1",
                "C",
            ],
            ["#3", "", "", "", "", "", "", "", "1", "D"],
        ],
    )
    con = connect()
    result = ingest(con, tmp_path, 0.9)
    assert con.execute(
        "SELECT file, line_number, column_name, reason, source_system FROM raw.quarantine "
        "ORDER BY line_number"
    ).fetchall() == [
        ("orders_export.csv", 3, "customer_id", "unknown customer", "shopify"),
        ("orders_export.csv", 4, None, "unparseable money in Refunded Amount", "shopify"),
    ]
    assert result.sources["shopify"]["rows_skipped"] == 1
    assert result.sources["shopify"]["tables"]["orders"] == {
        "rows_mapped": 3,
        "rows_quarantined": 2,
        "rows_loaded": 1,
    }
    con.close()


def test_orders_without_any_customers_source_are_refused(tmp_path):
    folder = tmp_path / "2024-06-01"
    folder.mkdir()
    shutil.copy(FIXTURE / "2024-06-01" / "orders_export.csv", folder)
    con = connect()
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path)
    assert (refused.value.file, refused.value.reason) == (
        "customers.csv",
        "required file missing (and no vendor file of this export fills it)",
    )
    con.close()


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
                "SELECT customer_id, orders_count, net_revenue, refund_rate, discount_share, "
                "marketing_opt_in, signup_date, tenure_days FROM marts.customer_features"
            ).fetchall()
        }
    finally:
        con.close()
    assert len(got) == 19
    # 50 + 20 (the order under " ANN@example.com ") + 70; discount 10 / (140 + 10)
    assert got["shopify:7001"] == (
        3,
        Decimal("140.0000"),
        0.0,
        0.066667,
        False,
        date(2024, 1, 5),
        148,
    )
    # 30 + the fully refunded-away 0.00 order: two completed orders
    assert got["shopify:7002"][:2] == (2, Decimal("30.0000"))
    assert got["shopify:7003"][:2] == (1, Decimal("55.0000"))  # 80 - 25
    assert got["shopify:7004"][:3] == (0, Decimal("0.0000"), None)  # voided
    assert got["shopify:7005"][:3] == (0, Decimal("0.0000"), None)  # cancelled
    assert got["shopify:7006"][:3] == (0, Decimal("0.0000"), 1.0)  # refunded
    assert got["shopify:7007"][:2] == (1, Decimal("110.0000"))  # 100 EUR x 1.1
    assert got["shopify:7011"][:2] == (0, Decimal("0.0000"))  # partially paid: pending
