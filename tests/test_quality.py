"""Great Expectations suites, the DuckDB frames they run on, and the Dagster asset checks."""

from __future__ import annotations

import datetime as dt
import json
import re
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    ConfigurableResource,
    MaterializeResult,
    asset,
    materialize,
)

from pipelines import quality
from pipelines.schemas import TABLES
from pipelines.warehouse_tables import SEGMENTATION_DDL, create_python_owned_tables

EXPORT = dt.date(2026, 11, 21)
PREVIOUS = dt.date(2026, 11, 20)

# One clean export (2026-11-21) on top of an earlier one (2026-11-20).
CLEAN: dict[str, list[dict]] = {
    "customers": [
        {
            "customer_id": "C1",
            "signup_date": "2025-03-01",
            "email": "a@example.com",
            "acquisition_channel": "organic",
            "birth_year": 1980,
        },
        {"customer_id": "C2", "signup_date": "2026-11-21", "acquisition_channel": None},
    ],
    "orders": [
        {
            "order_id": "O1",
            "customer_id": "C1",
            "order_date": "2026-11-01 10:00:00",
            "amount": 10,
            "currency": "USD",
            "status": "completed",
            "discount_amount": 2,
        },
        {
            "order_id": "O2",
            "customer_id": "C2",
            "order_date": "2026-11-21 23:59:00",
            "amount": 0,
            "status": None,
        },
        # C0 is only in the previous export: still a known customer.
        {
            "order_id": "O3",
            "customer_id": "C0",
            "order_date": "2026-10-01 00:00:00",
            "amount": 5.5,
            "currency": "EUR",
            "status": "refunded",
        },
    ],
    "referrals": [
        {
            "referral_id": "R1",
            "referrer_customer_id": "C1",
            "referee_customer_id": "C2",
            "sent_at": "2026-11-01 09:00:00",
            "channel": "email",
            "status": "converted",
            "converted_at": "2026-11-21 08:00:00",
            "reward_referrer_amount": 10,
            "reward_type": "credit",
        },
        {
            "referral_id": "R2",
            "referrer_customer_id": "C1",
            "sent_at": "2026-11-02 09:00:00",
            "status": "sent",
        },
    ],
    "surveys": [
        {
            "response_id": "S1",
            "customer_id": "C1",
            "responded_at": "2026-11-10 12:00:00",
            "nps": 10,
            "csat": None,
        },
        {
            "response_id": "S2",
            "customer_id": "C2",
            "responded_at": "2026-11-21 12:00:00",
            "nps": 0,
            "csat": 5,
        },
    ],
    "events": [
        {
            "event_id": "E1",
            "customer_id": "C1",
            "occurred_at": "2026-11-05 12:00:00",
            "event_type": "review_posted",
        },
    ],
    "marketing_spend": [
        {"month": "2026-10-01", "channel": "paid_search", "spend": 100, "new_customers": 5},
        {"month": "2026-10-01", "channel": "email", "spend": 0, "new_customers": 0},
    ],
    "referral_program_costs": [{"month": "2026-11-01", "cost": 250}],
    "fx_rates": [{"currency": "EUR", "rate_to_base": 1.08}],
}


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], export_date: dt.date):
    (last,) = con.execute(
        f"SELECT coalesce(max(_line_number), 1) FROM raw.{table} WHERE _export_date = ?",
        [export_date],
    ).fetchone()
    for line, row in enumerate(rows, start=last + 1):
        cols = [*row, "_export_date", "_line_number"]
        con.execute(
            f"INSERT INTO raw.{table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [*row.values(), export_date, line],
        )


def load_clean(con: duckdb.DuckDBPyConnection) -> None:
    create_python_owned_tables(con)
    for day in (PREVIOUS, EXPORT):
        con.execute(
            "INSERT INTO raw.exports (export_date, mode, folder) VALUES (?, 'full', ?)",
            [day, str(day)],
        )
    # The previous export: C0, and the same order id O1 as today's (unique per export only).
    insert(con, "customers", [{"customer_id": "C0", "signup_date": "2024-01-01"}], PREVIOUS)
    insert(
        con,
        "orders",
        [{"order_id": "O1", "customer_id": "C0", "order_date": "2026-01-01", "amount": 1}],
        PREVIOUS,
    )
    for table, rows in CLEAN.items():
        insert(con, table, rows, EXPORT)


@pytest.fixture
def con():
    c = duckdb.connect()
    load_clean(c)
    yield c
    c.close()


def failures(outcome: quality.ValidationOutcome) -> list[tuple]:
    return [
        (f.type, f.column, f.unexpected_count, f.partial_unexpected_list) for f in outcome.failures
    ]


# ----------------------------------------------------------------------------- suites


def test_every_suite_loads_and_covers_the_contract():
    names = list(quality.iter_suite_names())
    assert sorted(p.stem for p in quality.EXPECTATIONS_DIR.glob("*.json")) == sorted(names)
    for name in names:
        suite = quality.load_suite(name)
        assert suite.name == name and suite.expectations
    for table in quality.RAW_TABLES:
        spec = TABLES[table]
        exps = json.loads(quality.suite_path(f"raw_{table}").read_text())["expectations"]
        by_type: dict[str, list[dict]] = {}
        for e in exps:
            by_type.setdefault(e["type"], []).append(e["kwargs"])
        required = {c.name for c in spec.columns if c.required}
        not_null = {k["column"] for k in by_type.get("expect_column_values_to_not_be_null", [])}
        assert not_null == required, table
        in_set = {
            k["column"]: k["value_set"]
            for k in by_type.get("expect_column_values_to_be_in_set", [])
        }
        for c in spec.columns:
            if c.allowed:
                assert in_set[c.name] == list(c.allowed), (table, c.name)
            if c.customer_ref:
                assert in_set["_unknown_customer"] == [False]


def test_every_contract_table_has_a_raw_suite_unless_exempt():
    suites = {p.stem.removeprefix("raw_") for p in quality.EXPECTATIONS_DIR.glob("raw_*.json")}
    exempt = {name for name, t in TABLES.items() if not t.raw_suite}
    assert exempt == {"erasure_requests"}
    assert suites == set(TABLES) - exempt
    assert quality.RAW_TABLES == tuple(t for t in TABLES if t not in exempt)


def test_row_rules_of_the_contract_are_checked_by_the_raw_suites():
    checked = {
        (table, rule.check_column)
        for table, spec in TABLES.items()
        for rule in spec.rules
        if rule.check_column is not None
    }
    assert checked == {
        ("referrals", "_converted_without_converted_at"),
        ("surveys", "_no_score"),
    }
    for table, column in checked:
        exps = json.loads(quality.suite_path(f"raw_{table}").read_text())["expectations"]
        assert {"column": column, "value_set": [False]} in [e["kwargs"] for e in exps]


def test_every_mart_suite_checks_a_mart_that_is_built():
    models = Path(__file__).resolve().parent.parent / "dbt_project" / "models" / "marts"
    dbt_marts = {p.stem for p in models.rglob("*.sql")}
    python_marts = set(re.findall(r"TABLE IF NOT EXISTS marts\.(\w+)", "".join(SEGMENTATION_DDL)))
    assert python_marts == {"customer_segments", "segment_profiles"}
    assert quality.MART_TABLES == (
        "customer_features",
        "customer_segments",
        "referral_roi_by_segment",
        "segment_profiles",
        "top_referrers",
    )
    assert set(quality.MART_TABLES) <= dbt_marts | python_marts


def test_clean_export_passes_every_raw_suite(con):
    for table in quality.RAW_TABLES:
        outcome = quality.validate_frame(
            f"raw_{table}", quality.frame_for_raw_check(con, table, EXPORT)
        )
        assert outcome.success, (table, failures(outcome))
        assert outcome.evaluated == len(quality.load_suite(f"raw_{table}").expectations)
        assert outcome.failed == 0 and outcome.failures == []


def test_raw_frame_holds_only_the_suites_columns_of_that_export(con):
    df = quality.frame_for_raw_check(con, "customers", EXPORT)
    assert sorted(df["customer_id"]) == ["C1", "C2"]  # not C0 of the previous export
    assert not {"email", "first_name", "last_name", "phone", "city"} & set(df.columns)
    assert "_signup_date_after_export_date" in df.columns
    assert len(quality.frame_for_raw_check(con, "orders", PREVIOUS)) == 1


def test_nps_out_of_range(con):
    insert(
        con,
        "surveys",
        [{"response_id": "S9", "customer_id": "C1", "responded_at": "2026-11-20", "nps": 11}],
        EXPORT,
    )
    outcome = quality.validate_frame(
        "raw_surveys", quality.frame_for_raw_check(con, "surveys", EXPORT)
    )
    assert not outcome.success and outcome.failed == 1
    assert failures(outcome) == [("expect_column_values_to_be_between", "nps", 1, [11])]
    assert outcome.failures[0].element_count == 3


def test_duplicate_order_id_within_one_export(con):
    insert(
        con,
        "orders",
        [{"order_id": "O2", "customer_id": "C1", "order_date": "2026-11-03", "amount": 3}],
        EXPORT,
    )
    outcome = quality.validate_frame(
        "raw_orders", quality.frame_for_raw_check(con, "orders", EXPORT)
    )
    # GX counts every row of a duplicated key.
    assert failures(outcome) == [("expect_column_values_to_be_unique", "order_id", 2, ["O2", "O2"])]


def test_unknown_customer(con):
    # C9 arrives only in a later export: unknown as of EXPORT.
    insert(
        con,
        "customers",
        [{"customer_id": "C9", "signup_date": "2026-11-22"}],
        dt.date(2026, 11, 22),
    )
    insert(
        con,
        "orders",
        [
            {"order_id": "O7", "customer_id": "C404", "order_date": "2026-11-03", "amount": 3},
            {"order_id": "O8", "customer_id": "C9", "order_date": "2026-11-03", "amount": 3},
        ],
        EXPORT,
    )
    outcome = quality.validate_frame(
        "raw_orders", quality.frame_for_raw_check(con, "orders", EXPORT)
    )
    assert failures(outcome) == [
        ("expect_column_values_to_be_in_set", "_unknown_customer", 2, ["C404", "C9"])
    ]


def test_order_date_after_export_date(con):
    insert(
        con,
        "orders",
        [{"order_id": "O9", "customer_id": "C1", "order_date": "2026-11-22 00:30:00", "amount": 3}],
        EXPORT,
    )
    outcome = quality.validate_frame(
        "raw_orders", quality.frame_for_raw_check(con, "orders", EXPORT)
    )
    assert failures(outcome) == [
        (
            "expect_column_values_to_be_in_set",
            "_order_date_after_export_date",
            1,
            ["2026-11-22T00:30:00"],
        )
    ]


def test_row_rules_of_referrals_surveys_and_monthly_tables(con):
    insert(
        con,
        "referrals",
        [
            {
                "referral_id": "R9",
                "referrer_customer_id": "C1",
                "sent_at": "2026-11-01",
                "status": "converted",
            }
        ],
        EXPORT,
    )
    insert(
        con,
        "surveys",
        [{"response_id": "S9", "customer_id": "C1", "responded_at": "2026-11-01"}],
        EXPORT,
    )
    insert(con, "referral_program_costs", [{"month": "2026-10-15", "cost": 1}], EXPORT)
    got = {
        t: failures(quality.validate_frame(f"raw_{t}", quality.frame_for_raw_check(con, t, EXPORT)))
        for t in ("referrals", "surveys", "referral_program_costs")
    }
    assert got == {
        "referrals": [
            ("expect_column_values_to_be_in_set", "_converted_without_converted_at", 1, ["R9"])
        ],
        "surveys": [("expect_column_values_to_be_in_set", "_no_score", 1, ["S9"])],
        "referral_program_costs": [
            (
                "expect_column_values_to_be_in_set",
                "_month_not_first_day",
                1,
                ["2026-10-15T00:00:00"],
            )
        ],
    }


def test_missing_key_reports_line_numbers_and_missing_column_is_reported(con):
    insert(
        con,
        "events",
        [
            {
                "event_id": None,
                "customer_id": "C1",
                "occurred_at": "2026-11-01",
                "event_type": "other",
            }
        ],
        EXPORT,
    )
    con.execute("ALTER TABLE raw.events DROP COLUMN event_type")
    outcome = quality.validate_frame(
        "raw_events", quality.frame_for_raw_check(con, "events", EXPORT)
    )
    got = {(f.type, f.column): f for f in outcome.failures}
    assert got[("expect_column_values_to_not_be_null", "event_id")].partial_unexpected_list == [3]
    assert got[("expect_table_columns_to_match_set", None)].partial_unexpected_list == [
        "event_type"
    ]
    assert got[("expect_column_values_to_not_be_null", "event_type")].error


# ----------------------------------------------------------------------------- marts

PROFILES = [
    ("S1", "Champion advocates", 60, 0.6, "p", "tiered rewards"),
    ("S2", "At risk", 30, 0.3, "p", "win-back offer"),
]


def test_segment_profiles_shares_must_sum_to_one(con):
    con.executemany(
        "INSERT INTO marts.segment_profiles VALUES (?, ?, ?, ?, ?, ?, DATE '2026-11-21')",
        PROFILES,
    )
    outcome = quality.validate_frame(
        "marts_segment_profiles", quality.frame_for_mart_check(con, "segment_profiles")
    )
    assert [(f.type, f.column) for f in outcome.failures] == [
        ("expect_column_sum_to_be_between", "share")
    ]
    assert outcome.failures[0].observed_value == pytest.approx(0.9)
    con.execute(
        "UPDATE marts.segment_profiles SET share = 0.4, customers = 40 WHERE segment_id = 'S2'"
    )
    assert quality.validate_frame(
        "marts_segment_profiles", quality.frame_for_mart_check(con, "segment_profiles")
    ).success


def test_roi_table_needs_exactly_one_all_row():
    cols = json.loads(quality.suite_path("marts_referral_roi_by_segment").read_text())
    column_set = cols["expectations"][0]["kwargs"]["column_set"]
    row = {c: 0 for c in column_set} | {"low_confidence": True, "roi": None}
    ok = pd.DataFrame([row | {"segment_id": "S1"}, row | {"segment_id": "all"}])
    assert quality.validate_frame("marts_referral_roi_by_segment", ok).success
    none = pd.DataFrame([row | {"segment_id": "S1"}])
    two = pd.DataFrame([row | {"segment_id": "all"}, row | {"segment_id": "all"}])
    assert [
        f.type for f in quality.validate_frame("marts_referral_roi_by_segment", none).failures
    ] == ["expect_column_distinct_values_to_contain_set"]
    assert [
        (f.type, f.unexpected_count)
        for f in quality.validate_frame("marts_referral_roi_by_segment", two).failures
    ] == [("expect_column_values_to_be_unique", 2)]


def test_customer_features_ratios_and_grain():
    df = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2"],
            "refund_rate": [0.5, None, 1.2],
            "discount_share": [0.0, 1.0, None],
            "T": [10, 5, None],
            "recency": [3, 7, None],
        }
    )
    got = {
        (f.type, f.column): f.unexpected_count
        for f in quality.validate_frame("marts_customer_features", df).failures
    }
    assert got[("expect_column_values_to_be_unique", "customer_id")] == 2
    assert got[("expect_column_values_to_be_between", "refund_rate")] == 1
    assert got[("expect_column_pair_values_a_to_be_greater_than_b", "T,recency")] == 1
    assert ("expect_column_values_to_be_between", "discount_share") not in got


# ----------------------------------------------------------------------------- results log


def test_record_results_logs_every_expectation_once_per_run(con):
    insert(
        con,
        "surveys",
        [{"response_id": "S9", "customer_id": "C1", "responded_at": "2026-11-20", "nps": 11}],
        EXPORT,
    )
    outcome = quality.validate_frame(
        "raw_surveys", quality.frame_for_raw_check(con, "surveys", EXPORT)
    )
    quality.record_results(con, "run-1", EXPORT, outcome)
    quality.record_results(con, "run-1", EXPORT, outcome)  # a retry replaces, not appends
    rows = con.execute(
        "SELECT expectation, column_name, success, element_count, unexpected_count, sample "
        "FROM raw.validation_results WHERE run_id = 'run-1' AND NOT success"
    ).fetchall()
    assert rows == [("expect_column_values_to_be_between", "nps", False, 3, 1, "[11]")]
    total = con.execute("SELECT count(*), min(export_date) FROM raw.validation_results").fetchone()
    assert total == (outcome.evaluated, EXPORT)


# ----------------------------------------------------------------------------- Dagster


class FakeWarehouse(ConfigurableResource):
    path: str

    @contextmanager
    def connect(self, read_only: bool = False):
        c = duckdb.connect(self.path, read_only=read_only)
        try:
            yield c
        finally:
            c.close()


@asset(key=AssetKey(["raw", "orders"]), check_specs=quality.raw_check_specs(["orders"]))
def raw_orders_asset(context, warehouse: FakeWarehouse):
    """Loads nothing, then checks, as the ingest step does after loading."""
    yield MaterializeResult()
    yield from quality.raw_check_results(context.run_id, warehouse, ["orders"])


@asset(key=AssetKey(["staging", "stg_orders"]), deps=[raw_orders_asset])
def downstream_asset() -> MaterializeResult:
    return MaterializeResult()


def run_orders_check(path: str):
    """Materialize raw/orders (with its check) and a downstream asset; the check's
    evaluation and whether the downstream asset was materialized."""
    result = materialize(
        [raw_orders_asset, downstream_asset],
        resources={"warehouse": FakeWarehouse(path=path)},
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    downstream_done = AssetKey(["staging", "stg_orders"]) in {
        m.asset_key for m in result.get_asset_materialization_events()
    }
    return evaluation, downstream_done


@pytest.fixture
def warehouse_file(tmp_path):
    path = str(tmp_path / "build.duckdb")
    with duckdb.connect(path) as c:
        load_clean(c)
    return path


def test_asset_check_passes_on_clean_export(warehouse_file):
    evaluation, downstream_done = run_orders_check(warehouse_file)
    assert downstream_done
    assert evaluation.check_name == "gx_raw_orders"
    assert evaluation.asset_key == AssetKey(["raw", "orders"])
    assert evaluation.passed
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["suite"] == "raw_orders" and meta["failed"] == 0
    assert meta["unexpected_count"] == 0 and meta["failed_expectations"] == []
    assert meta["export_date"] == "2026-11-21"


def test_asset_check_fails_blocks_and_logs(warehouse_file):
    with duckdb.connect(warehouse_file) as c:
        insert(
            c,
            "orders",
            [{"order_id": "O1", "customer_id": "C404", "order_date": "2026-11-02", "amount": 1}],
            EXPORT,
        )
    evaluation, downstream_done = run_orders_check(warehouse_file)
    assert not evaluation.passed
    assert evaluation.severity == AssetCheckSeverity.ERROR
    assert evaluation.blocking and not downstream_done
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["failed_expectations"] == [
        {
            "type": "expect_column_values_to_be_unique",
            "column": "order_id",
            "severity": "critical",
            "unexpected_count": 2,
            "element_count": 4,
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "column": "_unknown_customer",
            "severity": "critical",
            "unexpected_count": 1,
            "element_count": 4,
        },
    ]
    assert meta["unexpected_count"] == 3
    assert meta["sample_bad_values"] == {
        "expect_column_values_to_be_unique:order_id": ["O1", "O1"],
        "expect_column_values_to_be_in_set:_unknown_customer": ["C404"],
    }
    with duckdb.connect(warehouse_file) as c:
        logged = c.execute(
            "SELECT count(*), count(*) FILTER (NOT success), count(DISTINCT run_id) "
            "FROM raw.validation_results WHERE suite = 'raw_orders'"
        ).fetchone()
    assert logged == (meta["evaluated"], 2, 1)


def test_warning_rule_fails_the_check_without_blocking(warehouse_file):
    with duckdb.connect(warehouse_file) as c:
        insert(
            c,
            "orders",
            [
                {
                    "order_id": "O9",
                    "customer_id": "C1",
                    "order_date": "2026-11-22 00:30:00",
                    "amount": 3,
                }
            ],
            EXPORT,
        )
    evaluation, downstream_done = run_orders_check(warehouse_file)
    assert not evaluation.passed
    assert evaluation.severity == AssetCheckSeverity.WARN
    assert downstream_done
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["sample_bad_values"] == {
        "expect_column_values_to_be_in_set:_order_date_after_export_date": ["2026-11-22T00:30:00"]
    }


def test_mart_checks_are_blocking_and_keyed_by_mart():
    checks = quality.mart_asset_checks()
    keys = {spec.key for c in checks for spec in c.check_specs}
    assert {k.asset_key for k in keys} == {AssetKey(["marts", m]) for m in quality.MART_TABLES}
    assert {k.name for k in keys} == {f"gx_marts_{m}" for m in quality.MART_TABLES}
    assert all(spec.blocking for c in checks for spec in c.check_specs)
