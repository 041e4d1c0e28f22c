"""The contract as the one list: load order, row rules and a new table reaching raw."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines import schemas
from pipelines.erasure import apply_erasure, delete_by
from pipelines.ingest import ExportRefused, discover_exports, ingest_export
from pipelines.schemas import TABLES, Column, OneOfRequired, RequiredWhen, Table, load_order
from pipelines.warehouse_tables import create_python_owned_tables
from tests.exports import write_csv

# A table the pipeline has never seen: customer ids, a currency, a value set and a rule.
GIFT_CARDS = Table(
    "gift_cards",
    key=("card_id",),
    columns=(
        Column("card_id", "id", required=True),
        Column("customer_id", "id", required=True, customer_ref=True),
        Column("kind", "string", allowed=("promo", "paid")),
        Column("balance", "money", min_value=0),
        Column("currency", "string", upper_case=True, needs_rate=True),
        Column("expires_on", "date"),
    ),
    rules=(RequiredWhen("expires_on", when="kind", value="promo"),),
    raw_suite=False,
)
GIFT_CARDS_HEADER = ["card_id", "customer_id", "kind", "balance", "currency", "expires_on"]


def test_load_order_loads_what_others_are_checked_against_first():
    assert load_order() == (
        "customers",
        "fx_rates",
        "orders",
        "referrals",
        "surveys",
        "events",
        "marketing_spend",
        "referral_program_costs",
        "erasure_requests",
    )
    assert sorted(load_order()) == sorted(TABLES)
    for position, name in enumerate(load_order()):
        assert set(TABLES[name].depends_on) <= set(load_order()[:position]), name


def test_dependencies_come_from_the_columns():
    assert TABLES["orders"].depends_on == ("customers", "fx_rates")
    assert TABLES["referrals"].depends_on == ("customers", "fx_rates")
    assert TABLES["surveys"].depends_on == ("customers",)
    assert TABLES["events"].depends_on == ("customers",)
    for name in ("customers", "fx_rates", "marketing_spend", "erasure_requests"):
        assert TABLES[name].depends_on == (), name


def test_load_order_moves_a_dependency_ahead_and_refuses_cycles_and_strangers():
    scores = Table("scores", key=(), columns=(Column("customer_id", "id", customer_ref=True),))
    customers = Table("customers", key=("customer_id",), columns=(Column("customer_id", "id"),))
    assert load_order({"scores": scores, "customers": customers}) == ("customers", "scores")
    with pytest.raises(ValueError, match="scores depends on customers, which is not a table"):
        load_order({"scores": scores})
    paying = Table("customers", key=(), columns=(Column("currency", "string", needs_rate=True),))
    rates = Table("fx_rates", key=(), columns=(Column("customer_id", "id", customer_ref=True),))
    with pytest.raises(ValueError, match="customers -> fx_rates -> customers"):
        load_order({"customers": paying, "fx_rates": rates})


def test_row_rules_are_declared_once_and_give_the_quarantine_reasons():
    rules = {name: t.rules for name, t in TABLES.items() if t.rules}
    assert rules == {
        "referrals": (
            RequiredWhen(
                "converted_at",
                when="status",
                value="converted",
                check_column="_converted_without_converted_at",
            ),
        ),
        "surveys": (OneOfRequired(("nps", "csat"), check_column="_no_score"),),
        "erasure_requests": (OneOfRequired(("customer_id", "email")),),
    }
    assert [(r.column, r.reason) for rs in rules.values() for r in rs] == [
        ("converted_at", "converted_at required when status = converted"),
        ("nps", "nps or csat required"),
        ("customer_id", "customer_id or email required"),
    ]


def test_rule_sql_is_true_exactly_on_the_rows_that_break_it():
    converted = TABLES["referrals"].rules[0].broken_sql(lambda c: c)
    one_score = TABLES["surveys"].rules[0].broken_sql(lambda c: c)
    assert converted == "status = 'converted' AND converted_at IS NULL"
    assert one_score == "nps IS NULL AND csat IS NULL"
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT {converted} FROM (VALUES (1, 'converted', NULL), "
        "(2, 'converted', TIMESTAMP '2026-01-05'), (3, 'sent', NULL), (4, NULL, NULL)) "
        "v(i, status, converted_at) ORDER BY i"
    ).fetchall()
    # NULL (no status) is not a break: a CASE WHEN only quarantines on true.
    assert rows == [(True,), (False,), (False,), (None,)]
    scores = con.execute(
        f"SELECT {one_score} FROM (VALUES (1, NULL, NULL), (2, 9, NULL), (3, NULL, 3), "
        "(4, 9, 3)) v(i, nps, csat) ORDER BY i"
    ).fetchall()
    assert scores == [(True,), (False,), (False,), (False,)]


def test_erasure_deletes_by_every_customer_reference():
    assert delete_by() == [
        ("raw.customers", ("customer_id",)),
        ("raw.orders", ("customer_id",)),
        ("raw.referrals", ("referrer_customer_id",)),
        ("raw.surveys", ("customer_id",)),
        ("raw.events", ("customer_id",)),
        ("history.segment_spells", ("customer_id",)),
    ]


@pytest.fixture()
def with_gift_cards(monkeypatch):
    """TABLES with one more optional table, as if added to schemas.py."""
    monkeypatch.setitem(schemas.TABLES, "gift_cards", GIFT_CARDS)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(con)
    yield con
    con.close()


def _export(root: Path, cards: list[list[object]]) -> None:
    folder = root / "2026-11-21"
    write_csv(folder, "customers.csv", ["customer_id", "signup_date"], [["C1", "2025-01-01"]])
    write_csv(folder, "orders.csv", ["order_id", "customer_id", "order_date", "amount"], [])
    write_csv(
        folder, "referrals.csv", ["referral_id", "referrer_customer_id", "sent_at", "status"], []
    )
    write_csv(folder, "fx_rates.csv", ["currency", "rate_to_base"], [["EUR", "1.1"]])
    write_csv(folder, "gift_cards.csv", GIFT_CARDS_HEADER, cards)


def test_a_new_table_is_loaded_checked_and_erased_without_editing_ingest(with_gift_cards, tmp_path):
    con = with_gift_cards
    assert load_order()[-1] == "gift_cards"
    _export(
        tmp_path,
        [
            ["G1", "C1", "paid", "25.50", " eur ", ""],
            ["G2", "C1", "PROMO", "5", "", "2027-01-31"],
            ["G3", "C9", "paid", "1", "", ""],
            ["G4", "C1", "promo", "2", "", ""],
        ],
    )
    (folder,) = discover_exports(tmp_path)
    result = ingest_export(con, folder, 0.5, "USD")
    assert list(result.tables) == ["customers", "fx_rates", "orders", "referrals", "gift_cards"]
    cards = result.tables["gift_cards"]
    assert (cards.rows_read, cards.rows_loaded, cards.rows_quarantined) == (4, 2, 2)
    rows = con.execute(
        "SELECT card_id, customer_id, kind, balance, currency, expires_on, _export_date, "
        "_line_number FROM raw.gift_cards ORDER BY card_id"
    ).fetchall()
    assert rows == [
        ("G1", "C1", "paid", Decimal("25.5000"), "EUR", None, date(2026, 11, 21), 2),
        ("G2", "C1", "promo", Decimal("5.0000"), None, date(2027, 1, 31), date(2026, 11, 21), 3),
    ]
    assert con.execute(
        "SELECT file, line_number, column_name, value, reason FROM raw.quarantine ORDER BY 2"
    ).fetchall() == [
        ("gift_cards.csv", 4, "customer_id", "C9", "unknown customer"),
        ("gift_cards.csv", 5, "expires_on", None, "expires_on required when kind = promo"),
    ]
    con.execute(
        "INSERT INTO raw.erasure_requests (customer_id, _export_date, _line_number) "
        "VALUES ('C1', DATE '2026-11-21', 2)"
    )
    removed = apply_erasure(con)
    assert removed["raw.gift_cards"] == 2
    assert con.execute("SELECT count(*) FROM raw.gift_cards").fetchone() == (0,)


def test_a_new_tables_currency_needs_a_rate(with_gift_cards, tmp_path):
    _export(tmp_path, [["G1", "C1", "paid", "1", "chf", ""]])
    (folder,) = discover_exports(tmp_path)
    with pytest.raises(ExportRefused) as refused:
        ingest_export(with_gift_cards, folder, 0.5, "USD")
    assert refused.value.file == "gift_cards (fx_rates)"
    assert refused.value.reason == "no exchange rate for currency CHF"
    assert with_gift_cards.execute("SELECT count(*) FROM raw.gift_cards").fetchone() == (0,)
