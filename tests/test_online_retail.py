"""pipelines.online_retail: line items -> one contract export, on a hand-written file;
and the same file read as it is by the source layer's line-item retail system, which
must give the converter's raw customers and orders.

Every expected amount below is computed by hand from the lines of SOURCE.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from pipelines import online_retail
from pipelines.ingest import discover_exports, ingest_export
from pipelines.online_retail import ConversionError, convert
from pipelines.schemas import TABLES
from pipelines.warehouse_tables import create_python_owned_tables

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
SOURCE = (
    HEADER
    + "\n".join(
        [
            # 536365: three lines, one a minute later, a quoted comma in Description
            "536365,85123A,WHITE HANGING HEART,6.0,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
            "536365,71053,WHITE METAL LANTERN,6.0,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
            '536365,22752,"SET 7 BABUSHKA NESTING BOXES, RED",2.0,2010-12-01 08:27:00,7.65,'
            "17850.0,United Kingdom",
            # 536366: 12 * 1.85 + 3 * 0.165 = 22.20 + 0.495 = 22.695 -> 22.70 (exact decimals)
            "536366,22633,HAND WARMER UNION JACK,12.0,2010-12-02 09:00:00,1.85,12347.0,Iceland",
            "536366,84879,ASSORTED COLOUR BIRD ORNAMENT,3.0,"
            "2010-12-02 09:00:00,0.165,12347.0,Iceland",
            # C536367: cancellation of two lanterns: -2 * 3.39 = -6.78 -> refunded 6.78
            "C536367,71053,WHITE METAL LANTERN,-2.0,"
            "2010-12-03 10:00:00,3.39,17850.0,United Kingdom",
            # 536368: no CustomerID on either line -> not exported, counted
            "536368,22086,PAPER CHAIN KIT,4.0,2010-12-03 11:00:00,2.95,,United Kingdom",
            "536368,22087,PAPER BUNTING,1.0,2010-12-03 11:00:00,0.85,,United Kingdom",
            # 536369: zero-price line -> completed, amount 0.00; 12347 now ships to Finland
            "536369,M,Manual,1.0,2010-12-05 12:00:00,0.0,12347.0,Finland",
            # 536370: 3 * 4.25 = 12.75; country Unspecified -> empty
            "536370,21730,GLASS STAR,3.0,2010-12-06 13:00:00,4.25,12350.0,Unspecified",
            # 536372: a negative total without the C prefix (adjustment) -> cancelled 5.00
            "536372,B,Adjust,-1.0,2010-12-06 15:00:00,5.0,12350.0,Unspecified",
            # C536371: the only invoice of 12352, a return -> refunded 1.85, no completed order
            "C536371,22633,HAND WARMER UNION JACK,-1.0,2010-12-07 14:00:00,1.85,12352.0,"
            "Channel Islands",
        ]
    )
    + "\n"
)

EXPECTED_ORDERS = [
    [
        "order_id",
        "customer_id",
        "order_date",
        "amount",
        "status",
        "product_category",
        "discount_amount",
    ],
    ["536365", "17850", "2010-12-01T08:26:00", "50.94", "completed", "", ""],
    ["536366", "12347", "2010-12-02T09:00:00", "22.70", "completed", "", ""],
    ["C536367", "17850", "2010-12-03T10:00:00", "6.78", "refunded", "", ""],
    ["536369", "12347", "2010-12-05T12:00:00", "0.00", "completed", "", ""],
    ["536370", "12350", "2010-12-06T13:00:00", "12.75", "completed", "", ""],
    ["536372", "12350", "2010-12-06T15:00:00", "5.00", "cancelled", "", ""],
    ["C536371", "12352", "2010-12-07T14:00:00", "1.85", "refunded", "", ""],
]
EXPECTED_CUSTOMERS = [
    ["customer_id", "signup_date", "country", "acquisition_channel", "marketing_opt_in"],
    ["12347", "2010-12-02", "FI", "", ""],
    ["12350", "2010-12-06", "", "", ""],
    ["12352", "2010-12-07", "Channel Islands", "", ""],
    ["17850", "2010-12-01", "GB", "", ""],
]
REAL_FILE = online_retail.default_source()  # ONLINE_RETAIL_PATH or datasets/online_retail


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "lines.csv"
    path.write_text(SOURCE, encoding="utf-8")
    return path


def test_orders_and_customers_rows(source: Path, tmp_path: Path):
    summary = convert(source, tmp_path / "exports")
    folder = tmp_path / "exports" / "2010-12-08"  # the day after the last invoice
    assert summary.export_date == "2010-12-08" and summary.folder == str(folder)
    assert _rows(folder / "orders.csv") == EXPECTED_ORDERS
    assert _rows(folder / "customers.csv") == EXPECTED_CUSTOMERS
    assert (folder / "referrals.csv").read_text() == (
        "referral_id,referrer_customer_id,referee_email,referee_customer_id,sent_at,channel,"
        "status,converted_at,reward_referrer_amount,reward_referee_amount,reward_currency,"
        "reward_type,updated_at\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "customers.csv",
        "manifest.json",
        "orders.csv",
        "referrals.csv",
    ]


def test_manifest(source: Path, tmp_path: Path):
    convert(source, tmp_path)
    folder = tmp_path / "2010-12-08"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mode"] == "full"
    assert {name: entry["rows"] for name, entry in manifest["files"].items()} == {
        "customers.csv": 4,
        "orders.csv": 7,
        "referrals.csv": 0,
    }
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()


def test_summary_counts(source: Path, tmp_path: Path):
    s = convert(source, tmp_path)
    assert (s.lines_read, s.lines_without_customer, s.lines_not_exported) == (12, 2, 2)
    assert (s.invoices, s.invoices_without_customer) == (8, 1)
    assert (s.cancellation_invoices, s.cancellation_invoices_exported) == (2, 2)
    assert s.orders == 7
    assert s.orders_by_status == {"cancelled": 1, "completed": 4, "refunded": 2}
    assert s.zero_amount_orders == 1
    assert (s.customers, s.customers_without_completed_order) == (4, 1)
    assert s.countries_kept_as_names == {"Channel Islands": 1}
    text = online_retail.format_summary(s)
    assert "lines without CustomerID             2" in text
    assert "not silently dropped" in text


def test_export_passes_ingest_without_quarantine(source: Path, tmp_path: Path):
    convert(source, tmp_path)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        create_python_owned_tables(con)
        (folder,) = discover_exports(tmp_path)
        result = ingest_export(con, folder, 0.05, "GBP")
        assert result.rows_quarantined == 0
        assert {t: r.rows_loaded for t, r in result.tables.items()} == {
            "customers": 4,
            "orders": 7,
            "referrals": 0,
        }
        total = con.execute(
            "SELECT sum(amount) FROM raw.orders WHERE status = 'completed'"
        ).fetchone()[0]
        assert float(total) == pytest.approx(50.94 + 22.70 + 0 + 12.75)
    finally:
        con.close()


def test_rerun_is_byte_identical(source: Path, tmp_path: Path):
    convert(source, tmp_path)
    first = (tmp_path / "2010-12-08" / "manifest.json").read_bytes()
    convert(source, tmp_path)
    assert (tmp_path / "2010-12-08" / "manifest.json").read_bytes() == first


def test_refuses_to_mix_with_other_files(source: Path, tmp_path: Path):
    folder = tmp_path / "2010-12-08"
    folder.mkdir()
    (folder / "surveys.csv").write_text("response_id\n")
    with pytest.raises(ConversionError, match="surveys.csv"):
        convert(source, tmp_path)


def test_invoice_with_two_customers_is_an_error(tmp_path: Path):
    path = tmp_path / "lines.csv"
    path.write_text(
        HEADER + "1,A,x,1.0,2010-12-01 08:00:00,1.0,1.0,EIRE\n"
        "1,B,y,1.0,2010-12-01 08:00:00,1.0,2.0,EIRE\n"
    )
    with pytest.raises(ConversionError, match="more than one CustomerID"):
        convert(path, tmp_path / "out")


def test_cli_reads_source_from_env(source: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("ONLINE_RETAIL_PATH", str(source))
    assert online_retail.main(["--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "lines read                          12" in out
    assert (tmp_path / "out" / "2010-12-08" / "manifest.json").exists()


def test_real_file_counts(tmp_path: Path):
    # The real export ships in datasets/online_retail: absent is a failure.
    assert REAL_FILE.exists(), f"{REAL_FILE} missing: set ONLINE_RETAIL_PATH"
    s = convert(REAL_FILE, tmp_path)
    assert s.export_date == "2011-12-10"
    assert s.lines_read == 541_909
    assert s.lines_without_customer == s.lines_not_exported == 135_080
    assert s.invoices == 25_900
    assert s.customers == 4_372
    assert s.cancellation_invoices == 3_836
    assert s.orders_by_status == {"completed": 18_536, "refunded": 3_654}


def _warehouse(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path) if path else ":memory:")
    con.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(con)
    return con


def _contract_rows(con, table: str) -> list[tuple]:
    cols = ", ".join(TABLES[table].column_names)
    return con.execute(f"SELECT {cols} FROM raw.{table} ORDER BY ALL").fetchall()


def _ingest_as_downloaded(source: Path, root: Path, day: str, con) -> object:
    """The line-item file dropped as it is into a dated export folder, ingested."""
    folder = root / day
    folder.mkdir(parents=True)
    (folder / source.name).write_bytes(source.read_bytes())
    (export,) = discover_exports(root)
    return ingest_export(con, export, 0.05, "GBP")


def test_adapter_gives_the_converters_raw_rows(source: Path, tmp_path: Path):
    convert(source, tmp_path / "converted")
    via_converter = _warehouse()
    (folder,) = discover_exports(tmp_path / "converted")
    ingest_export(via_converter, folder, 0.05, "GBP")
    via_adapter = _warehouse()
    result = _ingest_as_downloaded(source, tmp_path / "downloaded", "2010-12-08", via_adapter)
    for table in ("customers", "orders"):
        assert _contract_rows(via_adapter, table) == _contract_rows(via_converter, table)
    assert _contract_rows(via_adapter, "customers")[0][:1] == ("12347",)
    # 536368's two lines have no CustomerID: skipped and counted, as the converter counts
    meta = result.sources["line_item_retail"]
    assert (meta["rows_read"], meta["rows_skipped"]) == (12, 2)
    assert meta["tables"]["orders"] == {"rows_mapped": 7, "rows_quarantined": 0, "rows_loaded": 7}
    # lineage: an order is its invoice's first line, a customer its first line
    assert via_adapter.execute(
        "SELECT order_id, _line_number, _source_system, _source_file FROM raw.orders "
        "WHERE order_id = '536366'"
    ).fetchone() == ("536366", 5, "line_item_retail", "lines.csv")
    assert via_adapter.execute(
        "SELECT customer_id, source_id FROM raw.customer_identities ORDER BY 1"
    ).fetchall() == [("12347", "12347"), ("12350", "12350"), ("12352", "12352"), ("17850", "17850")]


def test_adapter_quarantines_an_invoice_the_converter_refuses(tmp_path: Path):
    path = tmp_path / "lines.csv"
    path.write_text(
        HEADER + "1,A,x,1.0,2010-12-01 08:00:00,1.0,1.0,EIRE\n"
        "1,B,y,1.0,2010-12-01 08:00:00,1.0,2.0,EIRE\n"
        + "".join(f"{n},C,z,1.0,2010-12-02 08:00:00,2.0,3.0,EIRE\n" for n in range(2, 22))
    )
    con = _warehouse()
    result = _ingest_as_downloaded(path, tmp_path / "exports", "2010-12-03", con)
    assert con.execute(
        "SELECT file, line_number, reason, source_system FROM raw.quarantine"
    ).fetchall() == [("lines.csv", 2, "invoice with more than one CustomerID", "line_item_retail")]
    assert result.tables["orders"].rows_loaded == 20


def test_real_file_through_the_adapter_equals_the_converter(tmp_path: Path):
    assert REAL_FILE.exists(), f"{REAL_FILE} missing: set ONLINE_RETAIL_PATH"
    convert(REAL_FILE, tmp_path / "converted")
    via_converter = _warehouse(tmp_path / "converted.duckdb")
    (folder,) = discover_exports(tmp_path / "converted")
    ingest_export(via_converter, folder, 0.05, "GBP")
    via_converter.close()
    via_adapter = _warehouse(tmp_path / "adapter.duckdb")
    result = _ingest_as_downloaded(REAL_FILE, tmp_path / "downloaded", "2011-12-10", via_adapter)
    for table, rows in (("customers", 4_372), ("orders", 22_190)):
        cols = ", ".join(TABLES[table].column_names)
        via_adapter.execute(f"ATTACH '{tmp_path / 'converted.duckdb'}' AS conv (READ_ONLY)")
        diff = via_adapter.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM raw.{table} EXCEPT ALL "
            f"SELECT {cols} FROM conv.raw.{table})), (SELECT count(*) FROM (SELECT {cols} "
            f"FROM conv.raw.{table} EXCEPT ALL SELECT {cols} FROM raw.{table})), "
            f"(SELECT count(*) FROM raw.{table})"
        ).fetchone()
        via_adapter.execute("DETACH conv")
        assert diff == (0, 0, rows), table
    meta = result.sources["line_item_retail"]
    assert (meta["rows_read"], meta["rows_skipped"]) == (541_909, 135_080)
    assert result.rows_quarantined == 0
    via_adapter.close()
