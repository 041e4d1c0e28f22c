"""The source layer's framework: detection by header, the manifest override, refusals,
lineage and counts, and a new system added as one folder (pipelines/sources).

The system `tinycrm` below is written in the test's own folder: nothing in ingest,
quality or staging knows it, only the registry it is handed to.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import ExportRefused, discover_exports, ingest_export
from pipelines.sources import (
    DEFAULT_EMAIL_SALT,
    SourceSpecError,
    load_registry,
    normalise_header,
)
from pipelines.warehouse_tables import create_python_owned_tables
from tests.exports import write_csv, write_manifest

SALT = DEFAULT_EMAIL_SALT
REFERRALS_HEADER = ["referral_id", "referrer_customer_id", "sent_at", "status"]

TINYCRM_YAML = """
system: tinycrm
title: Tiny CRM
precedence: 30
layouts:
  contacts:
    file: contacts.csv
    columns:
      ref: {headers: [Contact Ref, contact_ref], required: true}
      email: {headers: [E-mail], required: true}
      joined: {headers: [Joined], required: true, type: date, format: "%d/%m/%Y"}
      opt_in: [Opt In]
  answers:
    file: nps.csv
    columns:
      answer_id: {headers: [Answer ID], required: true}
      respondent: {headers: [Respondent], required: true}
      score: {headers: [Score], required: true}
      answered_at: {headers: [Answered At], required: true, type: timestamp, format: unix}
  activity:
    file: activity.csv
    columns:
      who: {headers: [Who], required: true}
      what: {headers: [What], required: true}
      when_at: {headers: [When], required: true}
maps:
  yes_no: {"y": "true", "n": "false"}
tables:
  customers:
    from: contacts
    select:
      _source_id: ref
      email: email
      signup_date: joined
      marketing_opt_in: "{{ map('yes_no', 'opt_in') }}"
  surveys:
    from: answers
    select:
      response_id: answer_id
      customer_id__email: respondent
      responded_at: answered_at
      nps: score
  events:
    needs: [activity]
    python: hook.py
"""

HOOK = '''
def select(con, layouts):
    """Events: one per activity row (a Python hook returns the SELECT)."""
    assert "activity" in layouts
    return (
        "SELECT 'ev-' || _line_number AS event_id, who AS customer_id__email, "
        "when_at AS occurred_at, lower(what) AS event_type, _source_file, _line_number "
        "FROM activity"
    )
'''


def email_id(email: str) -> str:
    """The id a person of an id-less row gets: tinycrm:<24 hex of the salted hash>."""
    return "tinycrm:" + hashlib.sha256((SALT + email).encode()).hexdigest()[:24]


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(connection)
    yield connection
    connection.close()


@pytest.fixture()
def systems(tmp_path: Path) -> Path:
    folder = tmp_path / "systems" / "tinycrm"
    folder.mkdir(parents=True)
    (folder / "system.yaml").write_text(TINYCRM_YAML)
    (folder / "hook.py").write_text(HOOK)
    return tmp_path / "systems"


def tinycrm_export(root: Path, day: str = "2024-06-02") -> Path:
    folder = root / day
    folder.mkdir(parents=True)
    # BOM, case, blanks, column order and an unknown column; no "Opt In" column at all
    (folder / "contacts.csv").write_text(
        "\ufeff e-mail ,CONTACT REF,Joined,Favourite colour\n"
        "Zoe@Example.com ,c-1,03/02/2024,green\n"
        "bob@example.com,c-2,15/03/2024,\n"
        ",c-3,01/04/2024,red\n",
        encoding="utf-8",
    )
    write_csv(
        folder,
        "nps.csv",
        ["Answer ID", "Respondent", "Score", "Answered At"],
        [
            ["a1", "zoe@example.com", "9", "1717243200"],  # 2024-06-01 12:00:00 UTC
            ["a2", "BOB@example.com ", "11", "1717246800"],  # nps out of range
            ["a3", "nobody@example.com", "7", "1717250400"],  # no such customer
            ["a4", "zoe@example.com", "8", "not-a-time"],  # unparseable
        ],
    )
    write_csv(
        folder,
        "activity.csv",
        ["Who", "What", "When"],
        [["bob@example.com", "Review_Posted", "2024-05-30T08:00:00Z"]],
    )
    write_csv(folder, "orders.csv", ["order_id", "customer_id", "order_date", "amount"], [])
    return folder


def ingest(con, root: Path, systems: Path | None = None, threshold: float = 1.0):
    registry = load_registry([systems] if systems else [])
    return [ingest_export(con, f, threshold, "USD", SALT, registry) for f in discover_exports(root)]


def test_headers_compare_without_case_blanks_bom_or_punctuation():
    assert normalise_header("\ufeff Customer ID ") == "customerid"
    assert normalise_header("customer_id") == normalise_header("CUSTOMER-ID") == "customerid"
    assert normalise_header("Created date (UTC)") == "createddateutc"


def test_package_systems_are_found():
    registry = load_registry()
    assert {"shopify", "line_item_retail"} <= set(registry.systems)
    assert registry.layout("shopify/orders") is not None


def test_a_new_system_is_one_folder(con, tmp_path, systems):
    tinycrm_export(tmp_path / "exports")
    (result,) = ingest(con, tmp_path / "exports", systems)
    customers = con.execute(
        "SELECT customer_id, email, signup_date, marketing_opt_in, _line_number, _extra, "
        "_source_system, _source_file FROM raw.customers ORDER BY _line_number"
    ).fetchall()
    assert customers == [
        (
            "tinycrm:c-1",
            "Zoe@Example.com",
            date(2024, 2, 3),
            None,
            2,
            '{"Favourite colour":"green"}',
            "tinycrm",
            "contacts.csv",
        ),
        (
            "tinycrm:c-2",
            "bob@example.com",
            date(2024, 3, 15),
            None,
            3,
            '{"Favourite colour":null}',
            "tinycrm",
            "contacts.csv",
        ),
        (
            "tinycrm:c-3",
            None,
            date(2024, 4, 1),
            None,
            4,
            '{"Favourite colour":"red"}',
            "tinycrm",
            "contacts.csv",
        ),
    ]
    assert con.execute(
        "SELECT response_id, customer_id, responded_at, nps, _line_number, _source_file "
        "FROM raw.surveys"
    ).fetchall() == [("a1", "tinycrm:c-1", datetime(2024, 6, 1, 12), 9, 2, "nps.csv")]
    # The Python hook's events; the contract orders.csv went the usual way.
    assert con.execute(
        "SELECT event_id, customer_id, occurred_at, event_type, _source_system FROM raw.events"
    ).fetchall() == [("ev-2", "tinycrm:c-2", datetime(2024, 5, 30, 8), "review_posted", "tinycrm")]
    assert result.tables["orders"].rows_read == 0
    meta = result.as_metadata()["sources"]["tinycrm"]
    assert meta["files"] == {
        "activity.csv": "tinycrm/activity",
        "contacts.csv": "tinycrm/contacts",
        "nps.csv": "tinycrm/answers",
    }
    assert meta["rows_read"] == 3 + 4 + 1
    assert meta["tables"] == {
        "customers": {"rows_mapped": 3, "rows_quarantined": 0, "rows_loaded": 3},
        "events": {"rows_mapped": 1, "rows_quarantined": 0, "rows_loaded": 1},
        "surveys": {"rows_mapped": 4, "rows_quarantined": 3, "rows_loaded": 1},
    }


def test_a_mapped_row_is_quarantined_with_its_vendor_file_line_and_row(con, tmp_path, systems):
    tinycrm_export(tmp_path / "exports")
    ingest(con, tmp_path / "exports", systems)
    rows = con.execute(
        "SELECT file, line_number, column_name, value, reason, source_system, customer_id, "
        "raw_row FROM raw.quarantine ORDER BY line_number"
    ).fetchall()
    assert rows == [
        (
            "nps.csv",
            3,
            "nps",
            "11",
            "out of range (must be <= 10)",
            "tinycrm",
            "tinycrm:c-2",
            '{"Answer ID":"a2","Respondent":"BOB@example.com ","Score":"11",'
            '"Answered At":"1717246800"}',
        ),
        (
            "nps.csv",
            4,
            "customer_id",
            email_id("nobody@example.com"),
            "unknown customer",
            "tinycrm",
            email_id("nobody@example.com"),
            '{"Answer ID":"a3","Respondent":"nobody@example.com","Score":"7",'
            '"Answered At":"1717250400"}',
        ),
        (
            "nps.csv",
            5,
            "responded_at",
            "not-a-time",
            "unparseable timestamp",
            "tinycrm",
            "tinycrm:c-1",
            '{"Answer ID":"a4","Respondent":"zoe@example.com","Score":"8",'
            '"Answered At":"not-a-time"}',
        ),
    ]


def test_too_many_bad_mapped_rows_refuse_the_export_naming_the_vendor_file(con, tmp_path, systems):
    tinycrm_export(tmp_path / "exports")
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path / "exports", systems, threshold=0.05)
    assert refused.value.file == "nps.csv"
    assert refused.value.reason == (
        "3 of 4 surveys rows mapped from it are bad (75.0% > 5% threshold); "
        "most common: out of range (must be <= 10) in column nps"
    )
    assert con.execute("SELECT count(*) FROM raw.customers").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM raw.customer_identities").fetchone() == (0,)


def test_unknown_layout_is_refused_naming_the_closest_and_what_it_lacks(con, tmp_path):
    folder = tmp_path / "exports" / "2024-06-02"
    write_csv(folder, "customers.csv", ["customer_id", "signup_date"], [["C1", "2024-01-01"]])
    write_csv(folder, "orders.csv", ["order_id", "customer_id", "order_date", "amount"], [])
    write_csv(folder, "referrals.csv", REFERRALS_HEADER, [])
    write_csv(
        folder,
        "orders (2).csv",
        ["Name", "Email", "Financial Status", "Created at"],
        [["#1", "a@x.com", "paid", "2024-01-01 10:00:00 +0000"]],
    )
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path / "exports")
    assert refused.value.file == "orders (2).csv"
    assert refused.value.reason == (
        "matches no known layout; the closest is shopify/orders (orders_export.csv), which "
        "needs the column(s) it lacks: Currency, Subtotal, Total, Lineitem quantity, "
        "Lineitem name"
    )


def test_manifest_sources_override_detection(con, tmp_path, systems):
    """A header that fits two layouts equally is refused; manifest.json says which."""
    twin = systems / "twin"
    twin.mkdir()
    (twin / "system.yaml").write_text(
        TINYCRM_YAML.replace("system: tinycrm", "system: twin").split("maps:")[0] + "tables: {}\n"
    )
    folder = tinycrm_export(tmp_path / "exports")
    (folder / "nps.csv").unlink()
    (folder / "activity.csv").unlink()
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path / "exports", systems)
    assert refused.value.file == "contacts.csv"
    assert refused.value.reason.startswith(
        "matches several layouts equally well (tinycrm/contacts, twin/contacts)"
    )
    (folder / "manifest.json").write_text(
        json.dumps({"sources": {"contacts.csv": "tinycrm/contacts"}})
    )
    (result,) = ingest(con, tmp_path / "exports", systems)
    assert result.sources["tinycrm"]["files"] == {"contacts.csv": "tinycrm/contacts"}
    assert result.tables["customers"].rows_loaded == 3


def test_a_declared_layout_must_fit_and_exist(con, tmp_path, systems):
    folder = tinycrm_export(tmp_path / "exports")
    (folder / "manifest.json").write_text(json.dumps({"sources": {"nps.csv": "tinycrm/contacts"}}))
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path / "exports", systems)
    assert (refused.value.file, refused.value.reason) == (
        "nps.csv",
        "declared tinycrm/contacts in manifest.json but lacks: Contact Ref, E-mail, Joined",
    )
    (folder / "manifest.json").write_text(json.dumps({"sources": {"nps.csv": "nope/x"}}))
    with pytest.raises(ExportRefused, match=r"sources: unknown layout 'nope/x'"):
        ingest(con, tmp_path / "exports", systems)


def test_manifest_row_counts_cover_vendor_files(con, tmp_path, systems):
    folder = tinycrm_export(tmp_path / "exports")
    write_manifest(folder, overrides={"nps.csv": {"rows": 5}})
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path / "exports", systems)
    assert (refused.value.file, refused.value.reason) == (
        "nps.csv",
        "4 rows read but manifest.json says 5 (truncated export)",
    )


def test_a_vendor_export_may_lack_referrals_but_not_orders(con, tmp_path, systems):
    folder = tinycrm_export(tmp_path / "exports")
    (result,) = ingest(con, tmp_path / "exports", systems)
    assert "referrals" not in result.tables
    (folder / "orders.csv").unlink()
    with pytest.raises(ExportRefused) as refused:
        ingest(con, tmp_path / "exports", systems)
    assert (refused.value.file, refused.value.reason) == (
        "orders.csv",
        "required file missing (and no vendor file of this export fills it)",
    )


def test_contract_rows_carry_their_lineage(con, tmp_path):
    folder = tmp_path / "exports" / "2024-06-02"
    write_csv(folder, "customers.csv", ["customer_id", "signup_date"], [["C1", "2024-01-01"]])
    write_csv(folder, "orders.csv", ["order_id", "customer_id", "order_date", "amount"], [])
    write_csv(folder, "referrals.csv", REFERRALS_HEADER, [])
    (result,) = ingest(con, tmp_path / "exports")
    assert result.sources == {}
    assert con.execute(
        "SELECT customer_id, _line_number, _source_system, _source_file FROM raw.customers"
    ).fetchall() == [("C1", 2, "contract", "customers.csv")]


def test_an_older_warehouse_gets_the_new_columns():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute(
        "CREATE TABLE raw.customers (customer_id VARCHAR, _export_date DATE, "
        "_line_number BIGINT, _extra JSON)"
    )
    con.execute("INSERT INTO raw.customers VALUES ('C1', DATE '2024-01-01', 2, NULL)")
    con.execute(
        "CREATE TABLE raw.quarantine (export_date DATE NOT NULL, file VARCHAR NOT NULL, "
        "line_number BIGINT, column_name VARCHAR, value VARCHAR, reason VARCHAR NOT NULL, "
        "raw_row JSON)"
    )
    create_python_owned_tables(con)
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' "
            "AND table_name = 'customers' ORDER BY ordinal_position"
        ).fetchall()
    ]
    # in the order of a new store's DDL
    assert cols[-5:] == [
        "_source_system",
        "_source_file",
        "_row_hash",
        "_superseded_on",
        "_line_hash",
    ]
    assert con.execute("SELECT * FROM raw.customers").fetchall() == [
        ("C1", date(2024, 1, 1), 2, None, None, None, None, None, None)
    ]
    qcols = [r[0] for r in con.execute("DESCRIBE raw.quarantine").fetchall()]
    assert qcols[-2:] == ["source_system", "customer_id"]
    create_python_owned_tables(con)  # idempotent
    con.close()


def test_a_broken_system_folder_is_refused_at_load(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "system.yaml").write_text("system: bad\nlayouts:\n  x:\n    columns:\n      a: [A]\n")
    with pytest.raises(SourceSpecError, match="layout x: no required column"):
        load_registry([folder])
    (folder / "system.yaml").write_text(
        "system: bad\nlayouts:\n  x:\n    columns:\n      a: {headers: [A], required: true}\n"
        "tables:\n  gift_cards: {from: x, select: {a: a}}\n"
    )
    with pytest.raises(SourceSpecError, match="'gift_cards' is not a contract table"):
        load_registry([folder])


def test_amounts_and_dates_are_normalised_before_the_checks(con, tmp_path):
    """Declared types: a decimal comma, thousands separators, strptime formats; a value
    that does not parse stays as written so the checks say what it was."""
    systems = tmp_path / "systems" / "shop2"
    systems.mkdir(parents=True)
    (systems / "system.yaml").write_text(
        """
system: shop2
layouts:
  sales:
    columns:
      sale: {headers: [Sale], required: true}
      buyer: {headers: [Buyer], required: true}
      sold_at: {headers: [At], required: true, type: timestamp, format: "%d.%m.%Y %H:%M %z"}
      total: {headers: [Total], required: true, type: decimal, decimal_comma: true}
tables:
  customers:
    from: sales
    select: {_source_id: buyer, signup_date: "'2024-01-01'"}
  orders:
    from: sales
    select: {order_id: sale, customer_id__source_id: buyer, order_date: sold_at, amount: total}
"""
    )
    folder = tmp_path / "exports" / "2024-06-02"
    write_csv(
        folder,
        "sales.csv",
        ["Sale", "Buyer", "At", "Total"],
        [
            ["S1", "B1", "01.05.2024 10:00 +0200", "1.234,50"],
            ["S2", "B2", "02.05.2024 23:30 -0100", "12,5"],
            ["S3", "B3", "03.05.2024 09:00 +0000", "7"],
            ["S4", "B4", "yesterday", "3"],
        ],
    )
    (result,) = ingest(con, tmp_path / "exports", systems.parent)
    assert con.execute(
        "SELECT order_id, order_date, amount FROM raw.orders ORDER BY 1"
    ).fetchall() == [
        ("S1", datetime(2024, 5, 1, 8), Decimal("1234.5000")),
        ("S2", datetime(2024, 5, 3, 0, 30), Decimal("12.5000")),
        ("S3", datetime(2024, 5, 3, 9), Decimal("7.0000")),
    ]
    assert con.execute("SELECT file, value, reason FROM raw.quarantine").fetchall() == [
        ("sales.csv", "yesterday", "unparseable timestamp")
    ]
    assert result.sources["shop2"]["tables"]["orders"] == {
        "rows_mapped": 4,
        "rows_quarantined": 1,
        "rows_loaded": 3,
    }
