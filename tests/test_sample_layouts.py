"""The same synthetic data as a contract export and as a mixed vendor export (Shopify
customers and orders, HubSpot contacts, Mention Me referrals, Friendbuy rewards, Delighted
NPS/CSAT) gives the same features, ROI and segments; customer ids differ only through the
identity crosswalk (`shopify:<Customer ID>`)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.resources import store_path_for
from pipelines.sample import generate_export
from pipelines.sample.layouts import convert, shopify, write_reduced_contract
from tests.pipeline_runner import failure_messages, run_job

CUSTOMERS = 300
SEED = 11


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Both exports and both whole nightly runs: {"contract"|"mixed": root folder}."""
    root = tmp_path_factory.mktemp("layouts")
    base = generate_export(root / "base", CUSTOMERS, seed=SEED)
    write_reduced_contract(base, "mixed", root / "contract" / "exports")
    shutil.copytree(root / "base", root / "mixed" / "exports")
    convert(root / "mixed" / "exports" / base.name, "mixed")
    for name in ("contract", "mixed"):
        result = run_job(root / name / "exports", root / name / "warehouse.duckdb")
        assert result.success, failure_messages(result)
    return {"contract": root / "contract", "mixed": root / "mixed", "base": base}


def _query(root: Path, sql: str, store: bool = False) -> pd.DataFrame:
    """A query on the analysts' warehouse of a run, or on the pipeline's store."""
    path = root / "warehouse.duckdb"
    con = duckdb.connect(str(store_path_for(path, "") if store else path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _contract_ids(runs) -> dict[str, str]:
    """Mixed run's customer id -> the contract's, through the crosswalk: the person's
    Shopify Customer ID, which the generator derives from the contract id."""
    crosswalk = _query(
        runs["mixed"],
        "SELECT source_id, customer_id FROM staging.stg_customer_identities "
        "WHERE source_system = 'shopify'",
        store=True,
    )
    contract = _query(runs["contract"], "SELECT customer_id FROM staging.stg_customers", store=True)
    by_source = dict(
        zip(shopify.source_ids(contract["customer_id"]), contract["customer_id"], strict=True)
    )
    return {
        c: by_source[s] for s, c in zip(crosswalk.source_id, crosswalk.customer_id, strict=True)
    }


def _mart(runs, name: str, table: str, id_columns: tuple[str, ...], key: list[str]):
    frame = _query(runs[name], f"SELECT * FROM marts.{table}")
    if name == "mixed":
        ids = _contract_ids(runs)
        for column in id_columns:
            frame[column] = frame[column].map(ids).where(frame[column].notna(), None)
    return frame.sort_values(key).reset_index(drop=True)


@pytest.mark.parametrize(
    ("table", "id_columns", "key"),
    [
        ("customer_features", ("customer_id", "referred_by_customer_id"), ["customer_id"]),
        ("customer_segments", ("customer_id",), ["customer_id"]),
        ("segment_profiles", (), ["segment_id"]),
        ("referral_roi_by_segment", (), ["segment_id"]),
        ("referral_roi_by_segment_monthly", (), ["segment_id", "month"]),
    ],
)
def test_mixed_export_gives_the_contract_exports_marts(runs, table, id_columns, key):
    contract = _mart(runs, "contract", table, id_columns, key)
    mixed = _mart(runs, "mixed", table, id_columns, key)
    assert len(contract) > 0
    pd.testing.assert_frame_equal(contract, mixed, check_exact=True)


def test_the_mixed_marts_are_not_empty_where_the_vendors_fill_them(runs):
    """The equality above is not one of empty columns: Friendbuy's rewards, Mention Me's
    conversions and Delighted's scores reach the marts."""
    overall = _query(
        runs["mixed"],
        "SELECT referrals_converted, total_cost FROM marts.referral_roi_by_segment "
        "WHERE segment_id = 'all'",
    ).iloc[0]
    # converted referrals of the reduced contract data, counted independently
    referrals = pd.read_csv(
        runs["contract"] / "exports" / runs["base"].name / "referrals.csv", dtype=str
    )
    converted = referrals[referrals["status"] == "converted"]
    assert 0 < overall["referrals_converted"] <= len(converted)
    assert overall["total_cost"] > 0
    scored = _query(
        runs["mixed"],
        "SELECT count(nps_avg) AS nps, count(csat_avg) AS csat FROM marts.customer_features",
    ).iloc[0]
    assert scored["nps"] > 0 and scored["csat"] > 0


def _data_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def test_ingest_counts_per_system_are_in_the_warehouse_and_the_report(runs):
    folder = runs["mixed"] / "exports" / runs["base"].name
    orders = pd.read_csv(folder / "orders_export.csv", dtype=str)
    credits = pd.read_csv(folder / "account_credit_export.csv", dtype=str)
    got = _query(
        runs["mixed"],
        "SELECT source_system, rows_read, rows_skipped, rows_merged, rows_quarantined, "
        "rows_loaded FROM audit.export_sources ORDER BY source_system",
    ).set_index("source_system")
    customers = _data_rows(folder / "customers_export.csv")
    shopify_read = len(orders) + customers
    line_items_after_first = len(orders) - orders["Name"].nunique()
    assert got.loc["shopify"].tolist() == [
        shopify_read,
        line_items_after_first,
        0,
        0,
        customers + orders["Name"].nunique(),
    ]
    # every HubSpot contact is a Shopify customer: merged into that row
    contacts = _data_rows(folder / f"hubspot-crm-exports-all-contacts-{folder.name}.csv")
    assert got.loc["hubspot"].tolist() == [contacts, 0, contacts, 0, 0]
    redemptions = int((credits["Credit Source"] == "Redemption").sum())
    assert got.loc["friendbuy", ["rows_read", "rows_skipped"]].tolist() == [
        len(credits),
        redemptions,
    ]
    feed = _data_rows(folder / "crm_feed.csv")
    assert got.loc["mention_me"].tolist() == [feed, 0, 0, 0, feed]
    contract_files = ("events", "fx_rates", "marketing_spend", "referral_program_costs")
    contract_rows = sum(_data_rows(folder / f"{t}.csv") for t in contract_files)
    assert got.loc["contract", "rows_loaded"] == contract_rows

    page = (runs["mixed"] / "reports" / "latest.html").read_text(encoding="utf-8")
    section = page.split("Sources of the newest export", 1)[1].split("<h2>", 1)[0]
    assert "orders_export.csv" in section and "crm_feed.csv" in section
    assert f'<td class="n">{line_items_after_first:,}</td>' in section
