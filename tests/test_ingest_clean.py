"""The clean-file fast path (pipelines/ingest/clean.py) against the text path.

Each export is ingested twice, once as the pipeline does and once with the fast path
switched off; raw tables and quarantine must be identical, row for row.  Each test also
asserts which files took the fast path, so none passes by never taking it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import pipelines.ingest.tables as tables
from pipelines.ingest import discover_exports, exports_to_ingest, ingest_export
from pipelines.sample import generate_export
from pipelines.schemas import TABLES
from pipelines.warehouse_tables import create_python_owned_tables
from tests.exports import write_csv

CUSTOMERS_HEADER = ["customer_id", "email", "signup_date", "marketing_opt_in"]
CUSTOMERS = [["007", "a@x.com", "2025-01-01", "yes"], ["008", "b@x.com", "2025-02-01", "0"]]
ORDERS_HEADER = [
    "Order_ID ",
    "customer_id",
    "order_date",
    "amount",
    "status",
    "currency",
    "discount_amount",
    "channel_note",
]
# Clean but varied: offsets, bare dates, exponent and signed amounts, an extra column.
CLEAN_ORDERS = [
    ["0001", "007", "2026-01-01T10:00:00+02:00", "10.5", "completed", "USD", "+1", "x"],
    ["0002", "008", "2026-01-03", "1e3", "refunded", "USD", ".25", ""],
    ["0003", "007", "2026-01-04 23:59:59", "0.00005", "", "", "", "y"],
    ["0004", "008", "2026-01-05", " 7 ", "pending", "USD", "1.23456", ""],
]


def _snapshot(con) -> dict[str, list[tuple]]:
    """Every raw table but `_line_hash`, which only the clean path keeps (its lines are
    known to be whole records: pipelines/ingest/lines.py), and the identity crosswalk."""
    snap = {
        name: con.execute(
            f"SELECT * EXCLUDE (_line_hash) FROM raw.{name} ORDER BY _export_date, _line_number"
        ).fetchall()
        for name in TABLES
    }
    snap["quarantine"] = con.execute(
        "SELECT * FROM raw.quarantine ORDER BY export_date, file, line_number"
    ).fetchall()
    # the clean path records identities from the rows it parsed, the text path from all
    snap["customer_identities"] = con.execute(
        "SELECT * FROM raw.customer_identities ORDER BY ALL"
    ).fetchall()
    return snap


def _ingest(
    root: Path, monkeypatch, fast: bool, compared: set[str] | None = None
) -> tuple[dict, set[str]]:
    """Raw tables after ingesting every export under root, and the files that went fast;
    `compared` collects "<export date>/<file>" of the files whose rows were compared with
    raw before they were checked (only the changed ones checked and stored)."""
    taken: set[str] = set()
    real = tables.ingest_clean_csv

    def clean(con, folder, table, path, changed_only=False, keep_parsed=False):
        loaded = real(con, folder, table, path, changed_only, keep_parsed) if fast else None
        if loaded is not None:
            taken.add(path.name)
            if loaded.compared and compared is not None:
                compared.add(f"{folder.export_date}/{path.name}")
        return loaded

    monkeypatch.setattr(tables, "ingest_clean_csv", clean)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(con)
    for folder in exports_to_ingest(con, discover_exports(root)):
        ingest_export(con, folder, 0.5, "USD")
    snap = _snapshot(con)
    con.close()
    return snap, taken


def _assert_same(root: Path, monkeypatch, compared: set[str] | None = None) -> set[str]:
    fast, taken = _ingest(root, monkeypatch, fast=True, compared=compared)
    text, none = _ingest(root, monkeypatch, fast=False)
    assert none == set()
    for name in text:
        assert fast[name] == text[name], name
    return taken


def _export(
    root: Path, orders: list[list[str]], orders_text: str | None = None, day: str = "2026-11-21"
) -> Path:
    folder = root / day
    write_csv(folder, "customers.csv", CUSTOMERS_HEADER, CUSTOMERS)
    write_csv(folder, "orders.csv", ORDERS_HEADER, orders)
    if orders_text is not None:
        (folder / "orders.csv").write_text(orders_text)
    write_csv(
        folder,
        "referrals.csv",
        ["referral_id", "referrer_customer_id", "sent_at", "status"],
        [["R1", "007", "2026-02-01", "sent"]],
    )
    return folder


def test_generated_export_takes_the_fast_path_with_the_same_raw_tables(tmp_path, monkeypatch):
    generate_export(tmp_path, customers=400, seed=7)
    taken = _assert_same(tmp_path, monkeypatch)
    # The generator's files are clean except where it plants bad rows on purpose.
    assert {"customers.csv", "orders.csv", "events.csv"} <= taken


def test_clean_varied_values_are_typed_like_the_text_path(tmp_path, monkeypatch):
    _export(tmp_path, CLEAN_ORDERS)
    taken = _assert_same(tmp_path, monkeypatch)
    assert taken == {"customers.csv", "orders.csv", "referrals.csv"}


# Rows the text path would quarantine or change (each makes its file go the text way).
ODD_ROWS = [
    [" 0009", "007", "2026-01-05", "1", "completed", "USD", "0", ""],  # blank around id
    ["0009", "007", " 2026-01-05 ", "1", "completed", "USD", "0", ""],  # reader rejects
    ["0009", "007", "2026-01-05", "1", "COMPLETED", "USD", "0", ""],  # value set case
    ["0009", "007", "2026-01-05", "1", "completed", "usd", "0", ""],  # currency case
    ["0009", "007", "2026-01-05", "abc", "completed", "USD", "0", ""],  # unparseable
    ["0009", "007", "2026-01-05", "-1", "completed", "USD", "0", ""],  # out of range
    ["0009", "999", "2026-01-05", "1", "completed", "USD", "0", ""],  # unknown customer
    ["0001", "007", "2026-01-05", "1", "completed", "USD", "0", ""],  # duplicate key
    ["0009", "007", "2026-01-05", "1", "shipped", "USD", "0", ""],  # not allowed
    ["0009", "007", "", "1", "completed", "USD", "0", ""],  # missing required value
]


@pytest.mark.parametrize("row", ODD_ROWS)
def test_a_file_the_text_path_would_change_goes_the_text_way(tmp_path, monkeypatch, row):
    _export(tmp_path, [*CLEAN_ORDERS, row])
    taken = _assert_same(tmp_path, monkeypatch)
    assert taken == {"customers.csv", "referrals.csv"}


def test_a_quoted_empty_string_is_null_on_both_paths(tmp_path, monkeypatch):
    text = (
        ",".join(ORDERS_HEADER) + "\n0001,007,2026-01-01,1,completed,USD,0,x\n"
        '0002,008,2026-01-02,2,completed,"",0,x\n'
    )
    _export(tmp_path, [], orders_text=text)
    taken = _assert_same(tmp_path, monkeypatch)
    assert "orders.csv" in taken


# The second night: 0002's amount changed, 0005 new, the other rows delivered as stored.
NIGHT_2 = [
    CLEAN_ORDERS[0],
    ["0002", "008", "2026-01-03", "999", "refunded", "USD", ".25", ""],
    *CLEAN_ORDERS[2:],
    ["0005", "007", "2026-01-06", "3", "completed", "USD", "0", "z"],
]


def test_a_later_full_export_checks_and_stores_only_its_changed_rows(tmp_path, monkeypatch):
    _export(tmp_path, CLEAN_ORDERS)
    _export(tmp_path, NIGHT_2, day="2026-11-22")
    compared: set[str] = set()
    taken = _assert_same(tmp_path, monkeypatch, compared)
    assert taken == {"customers.csv", "orders.csv", "referrals.csv"}
    # Not the first night (nothing stored to compare with).  Customers too: the identity
    # crosswalk reads the customer rows parsed.
    assert compared == {f"2026-11-22/{t}.csv" for t in ("customers", "orders", "referrals")}
    raw, _ = _ingest(tmp_path, monkeypatch, fast=True)
    night_2 = [r for r in raw["orders"] if str(r[-7]) == "2026-11-22"]  # _export_date
    assert [(r[0], r[3]) for r in night_2] == [("0002", Decimal("999")), ("0005", Decimal("3"))]


@pytest.mark.parametrize(
    "row",
    [*ODD_ROWS, CLEAN_ORDERS[2]],  # the last: a row delivered as stored, but twice
)
def test_a_later_file_with_an_odd_changed_row_goes_the_text_way(tmp_path, monkeypatch, row):
    _export(tmp_path, CLEAN_ORDERS)
    _export(tmp_path, [*NIGHT_2, row], day="2026-11-22")
    compared: set[str] = set()
    _assert_same(tmp_path, monkeypatch, compared)
    assert compared == {"2026-11-22/customers.csv", "2026-11-22/referrals.csv"}
