"""Identity across systems and exports: the crosswalk raw.customer_identities, the merge of
several systems' rows of one customer, erasure, and a change of salt.

Emails hash as sha256(salt || lower(trim(email))); an id made from an email is
`<system>:` + its first 24 hex characters.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.erasure import apply_erasure
from pipelines.ingest import discover_exports, exports_to_ingest, ingest_export
from pipelines.sources import DEFAULT_EMAIL_SALT, load_registry
from pipelines.warehouse_tables import create_python_owned_tables
from tests.exports import write_csv

SALT = DEFAULT_EMAIL_SALT
# The required columns of Shopify's current customers layout (the optional ones missing).
SHOPIFY_CUSTOMERS = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Total Spent",
    "Total Orders",
    "Default Address Country Code",
]
LEGACY_CUSTOMERS = [
    "First Name",
    "Last Name",
    "Email",
    "Accepts Marketing",
    "Country Code",
    "Total Spent",
    "Total Orders",
]
ORDERS = ["order_id", "customer_id", "order_date", "amount"]
REFERRALS = ["referral_id", "referrer_customer_id", "sent_at", "status"]


def h(email: str, salt: str = SALT) -> str:
    return hashlib.sha256((salt + email).encode()).hexdigest()


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(connection)
    yield connection
    connection.close()


def shop_export(root: Path, day: str, customers: list[list[str]], **files) -> Path:
    folder = root / day
    write_csv(folder, "customers_export.csv", SHOPIFY_CUSTOMERS, customers)
    write_csv(folder, "orders.csv", ORDERS, [])
    for name, (header, rows) in files.items():
        write_csv(folder, name.replace("__", "."), header, rows)
    return folder


def ingest_all(con, root: Path, salt: str = SALT):
    registry = load_registry()
    return [
        ingest_export(con, f, 0.5, "USD", salt, registry)
        for f in exports_to_ingest(con, discover_exports(root))
    ]


def crosswalk(con) -> list[tuple]:
    return con.execute(
        "SELECT source_system, source_id, customer_id, email_hash, first_seen_export "
        "FROM raw.customer_identities ORDER BY first_seen_export, source_system, source_id, "
        "email_hash"
    ).fetchall()


def customers(con, day: str) -> list[tuple]:
    return con.execute(
        "SELECT customer_id, email, signup_date, marketing_opt_in, country, _source_system, "
        "_line_number FROM raw.customers WHERE _export_date = ? ORDER BY customer_id",
        [day],
    ).fetchall()


def test_source_ids_keep_their_customer_and_emails_link_them(con, tmp_path):
    root = tmp_path / "exports"
    d1, d2, d3 = date(2024, 6, 1), date(2024, 6, 2), date(2024, 6, 3)
    shop_export(
        root,
        "2024-06-01",
        [
            ["'7001", "Ann", "Lee", "ann@x.com", "yes", "0", "0", "US"],
            ["'7002", "Bob", "Roe", "bob@x.com", "no", "0", "0", "CA"],
        ],
    )
    ingest_all(con, root)
    # 7001 changed its email; the new account 7003 has 7001's old one, with blanks and case
    shop_export(
        root,
        "2024-06-02",
        [
            ["'7001", "Ann", "Lee", "ann.new@x.com", "yes", "0", "0", "US"],
            ["'7002", "Bob", "Roe", "bob@x.com", "no", "0", "0", "CA"],
            ["'7003", "Ann", "Lee", " ANN@X.com ", "yes", "0", "0", "GB"],
        ],
    )
    (second,) = ingest_all(con, root)
    assert crosswalk(con) == sorted(
        [
            ("shopify", "7001", "shopify:7001", h("ann@x.com"), d1),
            ("shopify", "7002", "shopify:7002", h("bob@x.com"), d1),
            ("shopify", "7001", "shopify:7001", h("ann.new@x.com"), d2),
            ("shopify", "7003", "shopify:7001", h("ann@x.com"), d2),
        ],
        key=lambda r: (r[4], r[0], r[1], r[3]),
    )
    # 7001 and 7003 are one customer: one row, 7001's line (first), 7003 merged into it;
    # no orders, so signup = the first export that held them.  7002 came again unchanged:
    # raw keeps its version of the first export, not a copy.
    assert customers(con, "2024-06-02") == [
        ("shopify:7001", "ann.new@x.com", d1, True, "US", "shopify", 2),
    ]
    assert customers(con, "2024-06-01")[1] == (
        "shopify:7002",
        "bob@x.com",
        d1,
        False,
        "CA",
        "shopify",
        3,
    )
    assert second.sources["shopify"]["tables"]["customers"] == {
        "rows_mapped": 3,
        "rows_merged": 1,
        "rows_quarantined": 0,
        "rows_loaded": 2,
    }
    # An id-less row (older layout) with the newer email, another case, links by email
    folder = root / "2024-06-03"
    write_csv(
        folder,
        "customers_export.csv",
        LEGACY_CUSTOMERS,
        [["A", "L", "ANN.NEW@x.com", "no", "US", "0", "0"]],
    )
    write_csv(folder, "orders.csv", ORDERS, [])
    ingest_all(con, root)
    assert customers(con, "2024-06-03") == [
        # signup: the first export that held the customer's identity (no order in it)
        ("shopify:7001", "ANN.NEW@x.com", d1, False, "US", "shopify", 2),
    ]
    assert crosswalk(con)[-1] == ("shopify", None, "shopify:7001", h("ann.new@x.com"), d3)


def test_a_person_new_without_an_id_gets_a_hash_id_and_orders_find_it(con, tmp_path):
    folder = tmp_path / "exports" / "2024-06-01"
    write_csv(
        folder,
        "customers_export.csv",
        LEGACY_CUSTOMERS,
        [
            ["Zed", "Q", "Zed@Example.com", "yes", "NL", "0", "0"],
            ["No", "Mail", "", "no", "", "0", "0"],
        ],
    )
    write_csv(
        folder,
        "orders.csv",
        ORDERS,
        [["O1", "shopify:" + h("zed@example.com")[:24], "2024-05-01", "10"]],
    )
    (result,) = ingest_all(con, tmp_path / "exports")
    zed = "shopify:" + h("zed@example.com")[:24]
    assert con.execute("SELECT customer_id, email FROM raw.customers").fetchall() == [
        (zed, "Zed@Example.com")
    ]
    # neither an id nor an email: nothing to make a customer of
    assert con.execute(
        "SELECT file, line_number, column_name, reason, source_system FROM raw.quarantine"
    ).fetchall() == [
        ("customers_export.csv", 3, "customer_id", "missing required value", "shopify")
    ]
    assert con.execute("SELECT customer_id FROM raw.orders").fetchall() == [(zed,)]
    assert crosswalk(con) == [("shopify", None, zed, h("zed@example.com"), date(2024, 6, 1))]
    assert result.tables["customers"].rows_quarantined == 1


def test_contract_and_vendor_rows_of_one_person_merge_by_precedence(con, tmp_path):
    folder = tmp_path / "exports" / "2024-06-01"
    write_csv(
        folder,
        "customers.csv",
        ["customer_id", "email", "signup_date", "marketing_opt_in", "country", "city"],
        [
            ["C1", "c1@x.com", "2023-01-01", "yes", "FR", ""],
            ["C2", "c2@x.com", "2024-05-01", "", "", ""],
            ["C1", "c1@x.com", "2023-02-01", "yes", "FR", ""],  # duplicate key
        ],
    )
    write_csv(folder, "referrals.csv", REFERRALS, [])
    write_csv(
        folder,
        "customers_export.csv",
        [*SHOPIFY_CUSTOMERS, "Default Address City"],
        [
            ["9", "Cy", "One", " C1@X.COM ", "no", "0", "0", "DE", "Berlin"],
            ["10", "Cy", "Two", "c2@x.com", "yes", "0", "0", "IT", "Rome"],
        ],
    )
    write_csv(
        folder,
        "orders_export.csv",
        [
            "Name",
            "Email",
            "Financial Status",
            "Currency",
            "Subtotal",
            "Total",
            "Created at",
            "Lineitem quantity",
            "Lineitem name",
        ],
        [
            [
                "#1",
                "c2@x.com",
                "paid",
                "USD",
                "5.00",
                "5.00",
                "2024-04-01 10:00:00 +0000",
                "1",
                "A",
            ],
            [
                "#2",
                "c1@x.com",
                "paid",
                "USD",
                "7.00",
                "7.00",
                "2024-05-02 10:00:00 +0000",
                "1",
                "B",
            ],
        ],
    )
    (result,) = ingest_all(con, tmp_path / "exports")
    d = date(2024, 6, 1)
    # C1: contract values win (country FR, city from Shopify since the contract has none),
    # signup the earliest, opt-in false as Shopify says no.  C2: signup from the first
    # Shopify order (2024-04-01 < 2024-05-01), opt-in true (the contract has none).
    assert con.execute(
        "SELECT customer_id, email, signup_date, marketing_opt_in, country, city, "
        "_source_system, _source_file, _line_number FROM raw.customers ORDER BY 1"
    ).fetchall() == [
        ("C1", "c1@x.com", date(2023, 1, 1), False, "FR", "Berlin", "contract", "customers.csv", 2),
        ("C2", "c2@x.com", date(2024, 4, 1), True, "IT", "Rome", "contract", "customers.csv", 3),
    ]
    assert con.execute(
        "SELECT file, line_number, reason, source_system, customer_id FROM raw.quarantine"
    ).fetchall() == [("customers.csv", 4, "duplicate key within export", "contract", "C1")]
    assert con.execute("SELECT order_id, customer_id FROM raw.orders ORDER BY 1").fetchall() == [
        ("#1", "C2"),
        ("#2", "C1"),
    ]
    assert crosswalk(con) == [
        ("contract", "C1", "C1", h("c1@x.com"), d),
        ("contract", "C2", "C2", h("c2@x.com"), d),
        ("shopify", "10", "C2", h("c2@x.com"), d),
        ("shopify", "9", "C1", h("c1@x.com"), d),
    ]
    assert result.sources["shopify"]["tables"]["customers"]["rows_merged"] == 2
    assert result.tables["customers"].by_system == {
        "contract": {"rows": 3, "quarantined": 1},
    }


def test_contract_files_alone_record_their_identities(con, tmp_path):
    folder = tmp_path / "exports" / "2024-06-01"
    write_csv(
        folder,
        "customers.csv",
        ["customer_id", "email", "signup_date"],
        [["C1", " A@x.com ", "2024-01-01"], ["C2", "", "2024-01-02"]],
    )
    write_csv(folder, "orders.csv", ORDERS, [])
    write_csv(folder, "referrals.csv", REFERRALS, [])
    ingest_all(con, tmp_path / "exports")
    assert crosswalk(con) == [
        ("contract", "C1", "C1", h("a@x.com"), date(2024, 6, 1)),
        ("contract", "C2", "C2", None, date(2024, 6, 1)),
    ]
    # re-ingesting the same export adds nothing
    (folder / "customers.csv").write_text((folder / "customers.csv").read_text() + "")
    con.execute("DELETE FROM raw.exports")
    ingest_all(con, tmp_path / "exports")
    assert len(crosswalk(con)) == 2


def test_a_new_salt_forgets_the_old_hashes_but_keeps_source_ids(con, tmp_path):
    root = tmp_path / "exports"
    shop_export(root, "2024-06-01", [["1", "A", "B", "a@x.com", "no", "0", "0", "US"]])
    ingest_all(con, root, salt="old")
    shop_export(root, "2024-06-02", [["1", "A", "B", "a@x.com", "no", "0", "0", "US"]])
    ingest_all(con, root, salt="new")
    assert crosswalk(con) == [
        ("shopify", "1", "shopify:1", None, date(2024, 6, 1)),
        ("shopify", "1", "shopify:1", h("a@x.com", "new"), date(2024, 6, 2)),
    ]
    assert con.execute("SELECT DISTINCT salt_md5 FROM raw.customer_identities").fetchall() == [
        (hashlib.md5(b"new").hexdigest(),)
    ]


def test_erasure_clears_the_crosswalk_and_vendor_rows_in_quarantine(con, tmp_path):
    folder = shop_export(
        tmp_path / "exports",
        "2024-06-01",
        [
            ["1", "A", "B", "gone@x.com", "no", "0", "0", "US"],
            ["2", "C", "D", "stay@x.com", "no", "0", "0", "US"],
        ],
    )
    write_csv(
        folder,
        "orders_export.csv",
        [
            "Name",
            "Email",
            "Financial Status",
            "Currency",
            "Subtotal",
            "Total",
            "Created at",
            "Lineitem quantity",
            "Lineitem name",
        ],
        [
            ["#1", "Gone@x.com", "paid", "USD", "-5", "5", "2024-04-01 10:00:00 +0000", "1", "A"],
            ["#2", "stay@x.com", "paid", "USD", "5", "5", "2024-04-01 10:00:00 +0000", "1", "A"],
        ],
    )
    (folder / "orders.csv").unlink()
    write_csv(folder, "erasure_requests.csv", ["email"], [["gone@x.com"]])
    ingest_all(con, tmp_path / "exports")
    assert con.execute("SELECT count(*) FROM raw.quarantine").fetchone() == (1,)
    removed = apply_erasure(con)
    assert removed["raw.customer_identities"] == 1
    assert removed["raw.quarantine"] == 1
    assert crosswalk(con) == [("shopify", "2", "shopify:2", h("stay@x.com"), date(2024, 6, 1))]


def test_the_same_exports_give_the_same_crosswalk_and_raw_bytes(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "sources" / "shopify"
    snapshots = []
    for _ in range(2):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        create_python_owned_tables(con)
        ingest_all(con, fixture)
        snapshots.append(
            [
                con.execute(f"SELECT * FROM raw.{t}").fetchall()
                for t in ("customers", "orders", "customer_identities", "quarantine")
            ]
        )
        con.close()
    assert snapshots[0] == snapshots[1]
