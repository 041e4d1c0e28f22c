"""Ingest: formats, typing, quarantine rules and whole-export refusals on tiny exports."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.ingest import ExportRefused, discover_exports, exports_to_ingest, ingest_export
from pipelines.warehouse_tables import create_python_owned_tables
from tests.exports import write_csv, write_manifest

CUSTOMERS_HEADER = ["Customer_ID ", " EMAIL", "signup_date", "marketing_opt_in", "loyalty_tier"]
CUSTOMERS = [
    ["007", "A@x.com", "2025-01-01", "yes", "gold"],
    ["008", "b@x.com", "2025-02-01", "0", ""],
]
ORDERS_HEADER = ["order_id", "customer_id", "order_date", "amount", "status", "currency"]
ORDERS = [
    ["0001", "007", "2026-01-01T10:00:00+02:00", "10.5", "COMPLETED", ""],
    ["0002", "008", "2026-01-03", "0", "refunded", "usd"],
]
REFERRALS_HEADER = ["referral_id", "referrer_customer_id", "sent_at", "status"]


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(connection)
    yield connection
    connection.close()


def make_export(root: Path, day: str = "2026-11-21", orders=None, customers=None) -> Path:
    folder = root / day
    write_csv(folder, "customers.csv", CUSTOMERS_HEADER, customers or CUSTOMERS)
    write_csv(folder, "orders.csv", ORDERS_HEADER, ORDERS if orders is None else orders)
    write_csv(folder, "referrals.csv", REFERRALS_HEADER, [])
    return folder


def ingest(con, root: Path, threshold: float = 0.5):
    return [
        ingest_export(con, f, threshold, "USD")
        for f in exports_to_ingest(con, discover_exports(root))
    ]


def quarantine(con) -> list[tuple]:
    return con.execute(
        "SELECT file, line_number, column_name, value, reason FROM raw.quarantine "
        "ORDER BY file, line_number"
    ).fetchall()


def test_csv_is_typed_and_keeps_ids_and_extra_columns(con, tmp_path):
    make_export(tmp_path)
    (result,) = ingest(con, tmp_path)
    assert result.tables["customers"].rows_loaded == 2
    rows = con.execute(
        "SELECT customer_id, email, signup_date, marketing_opt_in, _line_number, _extra "
        "FROM raw.customers ORDER BY customer_id"
    ).fetchall()
    assert rows == [
        ("007", "A@x.com", date(2025, 1, 1), True, 2, '{"loyalty_tier":"gold"}'),
        ("008", "b@x.com", date(2025, 2, 1), False, 3, '{"loyalty_tier":null}'),
    ]
    orders = con.execute(
        "SELECT order_id, order_date, amount, status, currency FROM raw.orders ORDER BY 1"
    ).fetchall()
    # +02:00 -> 08:00 UTC; a bare date is midnight UTC; enums lower-cased, currency upper.
    assert orders == [
        ("0001", datetime(2026, 1, 1, 8, 0), Decimal("10.5000"), "completed", None),
        ("0002", datetime(2026, 1, 3, 0, 0), Decimal("0.0000"), "refunded", "USD"),
    ]
    assert con.execute("SELECT export_date, mode FROM raw.exports").fetchall() == [
        (date(2026, 11, 21), "full")
    ]


@pytest.mark.parametrize("fmt", ["csv.gz", "parquet", "jsonl"])
def test_other_formats_give_the_same_rows(con, tmp_path, fmt):
    folder = make_export(tmp_path)
    src = folder / "orders.csv"
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    if fmt == "csv.gz":
        with open(src, "rb") as f_in, gzip.open(folder / "orders.csv.gz", "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    elif fmt == "parquet":
        frame.replace("", None).to_parquet(folder / "orders.parquet", index=False)
    else:
        with open(folder / "orders.jsonl", "w") as handle:
            for rec in frame.to_dict("records"):
                handle.write(json.dumps({k: v or None for k, v in rec.items()}) + "\n")
    src.unlink()
    ingest(con, tmp_path)
    rows = con.execute(
        "SELECT order_id, customer_id, order_date, amount, status, currency, _line_number "
        "FROM raw.orders ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("0001", "007", datetime(2026, 1, 1, 8, 0), Decimal("10.5000"), "completed", None, 2),
        ("0002", "008", datetime(2026, 1, 3, 0, 0), Decimal("0.0000"), "refunded", "USD", 3),
    ]


def test_reingesting_an_export_replaces_its_rows(con, tmp_path):
    folder = make_export(tmp_path)
    ingest(con, tmp_path)
    assert ingest(con, tmp_path) == []  # unchanged files: nothing to do
    write_csv(folder, "orders.csv", ORDERS_HEADER, ORDERS[:1])
    ingest(con, tmp_path)
    assert con.execute("SELECT count(*) FROM raw.orders").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM raw.exports").fetchone()[0] == 1


def test_bad_rows_are_quarantined_with_file_line_column_and_reason(con, tmp_path):
    customers = CUSTOMERS + [["", "c@x.com", "2025-03-01", "", ""], ["009", "", "notadate", "", ""]]
    orders = ORDERS + [
        ["0003", "999", "2026-01-02", "5", "completed", ""],  # unknown customer
        ["0001", "008", "2026-01-03", "7", "completed", ""],  # duplicate key
        ["0004", "008", "2026-01-04", "-1", "completed", ""],  # out of range
        ["0005", "008", "2026-01-04", "12,5", "completed", ""],  # unparseable number
        ["0006", "008", "2026-01-04", "5", "shipped", ""],  # not an allowed status
    ]
    make_export(tmp_path, customers=customers, orders=orders)
    (result,) = ingest(con, tmp_path, threshold=0.9)
    assert quarantine(con) == [
        ("customers.csv", 4, "customer_id", None, "missing required value"),
        ("customers.csv", 5, "signup_date", "notadate", "unparseable date"),
        ("orders.csv", 4, "customer_id", "999", "unknown customer"),
        ("orders.csv", 5, "order_id", "0001", "duplicate key within export"),
        ("orders.csv", 6, "amount", "-1", "out of range (must be >= 0)"),
        ("orders.csv", 7, "amount", "12,5", "unparseable money"),
        ("orders.csv", 8, "status", "shipped", "value not allowed"),
    ]
    raw_row = con.execute(
        "SELECT raw_row FROM raw.quarantine WHERE line_number = 4 AND file = 'orders.csv'"
    ).fetchone()[0]
    assert json.loads(raw_row) == {
        "order_id": "0003",
        "customer_id": "999",
        "order_date": "2026-01-02",
        "amount": "5",
        "status": "completed",
        "currency": None,
    }
    assert result.tables["orders"].rows_quarantined == 5
    assert result.tables["orders"].rows_loaded == 2
    assert con.execute("SELECT count(*) FROM raw.orders").fetchone()[0] == 2


def test_table_specific_rules(con, tmp_path):
    folder = make_export(tmp_path)
    write_csv(
        folder,
        "referrals.csv",
        ["referral_id", "referrer_customer_id", "sent_at", "status", "converted_at"],
        [
            ["R1", "007", "2026-01-01", "converted", ""],
            ["R2", "007", "2026-01-01", "converted", "2026-01-05"],
        ],
    )
    write_csv(
        folder,
        "surveys.csv",
        ["response_id", "customer_id", "responded_at", "nps", "csat"],
        [
            ["S1", "007", "2026-01-01", "", ""],
            ["S2", "007", "2026-01-01", "11", ""],
            ["S3", "008", "2026-01-01", "9", "4"],
        ],
    )
    write_csv(
        folder, "erasure_requests.csv", ["customer_id", "email"], [["", " "], ["", "b@x.com"]]
    )
    ingest(con, tmp_path, threshold=0.9)
    assert quarantine(con) == [
        ("erasure_requests.csv", 2, "customer_id", None, "customer_id or email required"),
        ("referrals.csv", 2, "converted_at", None, "converted_at required when status = converted"),
        ("surveys.csv", 2, "nps", None, "nps or csat required"),
        ("surveys.csv", 3, "nps", "11", "out of range (must be <= 10)"),
    ]
    assert con.execute("SELECT customer_id, email FROM raw.erasure_requests").fetchall() == [
        (None, "b@x.com")
    ]


def refused(con, root: Path, threshold: float = 0.05) -> str:
    with pytest.raises(ExportRefused) as info:
        ingest(con, root, threshold)
    # Refusal leaves raw exactly as it was.
    assert con.execute("SELECT count(*) FROM raw.exports").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM raw.customers").fetchone()[0] == 0
    return str(info.value)


def test_refused_when_a_required_file_is_missing(con, tmp_path):
    (make_export(tmp_path) / "referrals.csv").unlink()
    assert "2026-11-21 refused: referrals.csv: required file missing" in refused(con, tmp_path)


def test_refused_when_a_required_column_is_missing(con, tmp_path):
    folder = make_export(tmp_path)
    write_csv(folder, "orders.csv", ["order_id", "customer_id", "amount"], [["1", "007", "3"]])
    assert "orders.csv: required column(s) missing: order_date" in refused(con, tmp_path)


def test_refused_when_a_file_cannot_be_parsed(con, tmp_path):
    folder = make_export(tmp_path)
    (folder / "orders.csv").write_text('order_id,customer_id,order_date,amount\n1,"007,x\n')
    assert "orders.csv: cannot be parsed" in refused(con, tmp_path)


def test_refused_when_manifest_row_count_disagrees(con, tmp_path):
    folder = make_export(tmp_path)
    write_manifest(folder, overrides={"orders.csv": {"rows": 3}})
    # Checksums match, so only the row count can trip: the file was truncated.
    assert "orders.csv: 2 rows read but manifest.json says 3 (truncated export)" in refused(
        con, tmp_path
    )


def test_refused_when_manifest_checksum_disagrees(con, tmp_path):
    folder = make_export(tmp_path)
    write_manifest(folder)
    with open(folder / "orders.csv", "a") as handle:
        handle.write("0009,007,2026-01-01,1,completed,\n")
    assert "orders.csv: sha256 checksum disagrees with manifest.json" in refused(con, tmp_path)


def test_refused_when_bad_row_share_exceeds_threshold(con, tmp_path):
    orders = ORDERS + [["0003", "999", "2026-01-02", "5", "completed", ""]]
    make_export(tmp_path, orders=orders)
    message = refused(con, tmp_path, threshold=0.05)
    assert (
        "orders.csv: 1 of 3 rows are bad (33.3% > 5% threshold); "
        "most common: unknown customer in column customer_id"
    ) in message


def test_refused_when_a_currency_has_no_rate(con, tmp_path):
    orders = ORDERS + [["0003", "007", "2026-01-02", "5", "completed", "EUR"]]
    make_export(tmp_path, orders=orders)
    assert "no exchange rate for currency EUR" in refused(con, tmp_path)


def test_currency_with_a_rate_is_accepted(con, tmp_path):
    orders = ORDERS + [["0003", "007", "2026-01-02", "5", "completed", "eur"]]
    folder = make_export(tmp_path, orders=orders)
    write_csv(folder, "fx_rates.csv", ["currency", "rate_to_base"], [["EUR", "1.1"]])
    ingest(con, tmp_path)
    assert con.execute("SELECT currency, rate_to_base FROM raw.fx_rates").fetchall() == [
        ("EUR", Decimal("1.10000000"))
    ]


def test_discovery_ignores_folders_that_are_not_dates(tmp_path):
    make_export(tmp_path, "2026-11-20")
    make_export(tmp_path, "2026-11-21")
    (tmp_path / "_ground_truth").mkdir()
    (tmp_path / "2026-13-40").mkdir()
    assert [f.export_date for f in discover_exports(tmp_path)] == [
        date(2026, 11, 20),
        date(2026, 11, 21),
    ]
