"""The sample export in the four single-system CRM layouts (`pipelines.sample.layouts`:
shopify, hubspot, salesforce, stripe), ingested as the pipeline ingests a vendor export.

One contract sample (300 customers, seed 7) is generated and read back with pandas before
any conversion; each layout converts a copy of it, and an in-memory warehouse ingests the
result (no dbt).  Every expected value is computed from the contract files, so the test
shows what each vendor layout gives back of the contract data, and what it cannot carry.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.ingest import ExportResult
from pipelines.sample import GROUND_TRUTH_DIR, generate_export
from pipelines.sample.layouts import LAYOUTS, convert
from pipelines.sample.layouts import salesforce as salesforce_layout
from pipelines.sample.layouts import stripe as stripe_layout
from tests.source_runs import connect, ingest

CUSTOMERS, SEED = 300, 7
CHANNELS = (
    "organic",
    "paid_search",
    "paid_social",
    "social",
    "email",
    "referral",
    "partner",
    "affiliate",
    "other",
)


@dataclass(frozen=True)
class Carries:
    """What a layout's vendor files carry of the contract, through its adapter."""

    files: dict[str, str]  # vendor file -> the layout the pipeline recognises it as
    all_statuses: bool  # False: only completed orders exist in the vendor's files
    order_time: str  # the order time's precision: "s", "min" or "D" (a date)
    signup: str  # "exact": the contract's; "first_order": the first order's day
    country: bool = False
    city: bool = False
    birth_year: bool = False
    channel: dict[str, str] | None = None  # contract channel -> raw channel; None: not carried
    opt_in: dict[str, bool | None] | None = None  # contract text -> raw; None: not carried
    zero_amount_orders: bool = True  # an order of 0.00 is in the vendor's files
    skipped: dict[str, str] = field(default_factory=dict)  # skip reason -> what it stands for


SAME_CHANNEL = {c: c for c in CHANNELS}
CARRIES = {
    "shopify": Carries(
        files={"customers_export.csv": "shopify/customers", "orders_export.csv": "shopify/orders"},
        all_statuses=True,
        order_time="s",
        signup="first_order",  # the customers export has no signup date
        country=True,
        city=True,
        opt_in={"true": True, "false": False},
        skipped={
            "line item after its order's first row (the order's fields are on the first row)": (
                "line items"
            )
        },
    ),
    "hubspot": Carries(
        files={
            "hubspot-crm-exports-all-contacts-2026-11-21.csv": "hubspot/contacts",
            "hubspot-crm-exports-all-deals-2026-11-21.csv": "hubspot/deals",
        },
        all_statuses=False,
        order_time="min",
        signup="exact",
        city=True,
        # Original Source has no partner or affiliate source: they are Other Campaigns
        channel={**SAME_CHANNEL, "partner": "other", "affiliate": "other"},
        # Unsubscribed from all email: an opt-out is said, an opt-in is not
        opt_in={"true": None, "false": False},
        skipped={"deal not won (open or lost): not an order": "orders not completed"},
    ),
    "salesforce": Carries(
        files={"Contact.csv": "salesforce/contacts", "Opportunity.csv": "salesforce/opportunities"},
        all_statuses=False,
        order_time="D",  # CloseDate is a date
        signup="exact",
        country=True,
        city=True,
        birth_year=True,
        channel=SAME_CHANNEL,
        # HasOptedOutOfEmail: an opt-out is said, an opt-in is not
        opt_in={"true": None, "false": False},
        skipped={
            "opportunity not won (open or lost): not an order": "orders not completed",
            "contact merged into another (MasterRecordId): its opportunities count for the "
            "master": "merged contacts",
        },
    ),
    "stripe": Carries(
        files={
            "unified_payments.csv": "stripe/payments",
            "unified_customers.csv": "stripe/customers",
        },
        all_statuses=True,
        order_time="s",
        signup="exact",
        zero_amount_orders=False,  # Stripe charges at least 0.50: a free order has no payment
        skipped={
            "failed payment (Status Failed or Blocked): no money moved, not revenue": (
                "failed payments"
            )
        },
    ),
}


def _read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def contract(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """The contract sample (root with exports/ and its ground truth) and its tables as
    text, read before any layout touches a copy of it."""
    root = tmp_path_factory.mktemp("contract")
    folder = generate_export(root / "exports", CUSTOMERS, seed=SEED)
    tables = {
        t: _read(folder, t) for t in ("customers", "orders", "referrals", "surveys", "events")
    }
    return root, tables


@dataclass
class Loaded:
    """One layout's converted export folder and the warehouse it was ingested into."""

    layout: str
    folder: Path
    contract: dict[str, pd.DataFrame]
    con: duckdb.DuckDBPyConnection
    result: ExportResult

    def ids(self, contract_ids: pd.Series) -> pd.Series:
        return LAYOUTS[self.layout].customer_ids(contract_ids)

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()


@pytest.fixture(scope="module", params=list(CARRIES))
def loaded(request, contract, tmp_path_factory):
    """A copy of the contract sample converted to one layout and ingested."""
    layout = request.param
    contract_root, tables = contract
    root = tmp_path_factory.mktemp(layout)
    shutil.copytree(contract_root / "exports", root / "exports")
    (folder,) = [p for p in (root / "exports").iterdir() if p.name != GROUND_TRUTH_DIR]
    convert(folder, layout)
    con = connect()
    result = ingest(con, root / "exports")
    yield Loaded(layout, folder, tables, con, result)
    con.close()


def test_the_vendor_files_are_recognised(loaded):
    carries = CARRIES[loaded.layout]
    assert loaded.result.sources[loaded.layout]["files"] == carries.files
    assert not [
        p.name for p in loaded.folder.iterdir() if p.name in ("customers.csv", "orders.csv")
    ]


def test_nothing_is_quarantined(loaded):
    assert loaded.result.rows_quarantined == 0
    assert loaded.rows("SELECT reason, count(*) FROM raw.quarantine GROUP BY 1") == []


def test_every_sample_customer_is_one_customer_with_the_predicted_id(loaded):
    c = loaded.contract["customers"]
    expected = sorted(loaded.ids(c["customer_id"]))
    assert len(set(expected)) == CUSTOMERS
    assert sorted(r[0] for r in loaded.rows("SELECT customer_id FROM raw.customers")) == expected
    assert loaded.rows(
        "SELECT DISTINCT _source_system FROM raw.customers UNION ALL "
        "SELECT DISTINCT _source_system FROM raw.orders"
    ) == [(loaded.layout,), (loaded.layout,)]


def _carried_orders(loaded: Loaded) -> pd.DataFrame:
    """The contract orders the layout's files carry, with the pipeline's customer ids."""
    carries = CARRIES[loaded.layout]
    o = loaded.contract["orders"]
    if not carries.all_statuses:
        o = o[o["status"] == "completed"]
    if not carries.zero_amount_orders:
        o = o[o["amount"] != "0.00"]
    return o.assign(customer_id=loaded.ids(o["customer_id"]))


def test_completed_orders_per_customer(loaded):
    """Count and sum of the completed orders of every customer, as in the contract (a
    free order that Stripe cannot carry left out)."""
    o = _carried_orders(loaded)
    done = o[o["status"] == "completed"]
    expected = {
        customer: (len(group), sum(Decimal(a) for a in group["amount"]))
        for customer, group in done.groupby("customer_id")
    }
    got = {
        customer: (n, total)
        for customer, n, total in loaded.rows(
            "SELECT customer_id, count(*), sum(amount) FROM raw.orders "
            "WHERE status = 'completed' GROUP BY 1"
        )
    }
    assert len(expected) > 200
    assert got == expected


def test_orders_come_back(loaded):
    """Every carried order: customer, time (to the layout's precision), amount, currency
    and status; nothing else."""
    carries = CARRIES[loaded.layout]
    o = _carried_orders(loaded)
    at = pd.to_datetime(o["order_date"], format="%Y-%m-%d %H:%M:%S").dt.floor(carries.order_time)
    expected = sorted(
        zip(
            o["customer_id"],
            at.dt.to_pydatetime(),
            (Decimal(a) for a in o["amount"]),
            o["currency"],
            o["status"],
            strict=True,
        )
    )
    got = sorted(
        loaded.rows("SELECT customer_id, order_date, amount, currency, status FROM raw.orders")
    )
    assert len(got) == len(expected)
    assert got == expected
    if carries.all_statuses:
        assert {r[4] for r in got} == {"completed", "refunded", "cancelled", "pending"}


def test_customer_attributes(loaded):
    """Signup day, country, city, birth year, channel and opt-in: the contract's where the
    layout carries them, NULL where it does not."""
    carries = CARRIES[loaded.layout]
    c = loaded.contract["customers"]
    if carries.signup == "exact":
        signup = c["signup_date"]
    else:  # the day of the first order of any status, else the export's date
        first = loaded.contract["orders"].groupby("customer_id")["order_date"].min().str[:10]
        signup = c["customer_id"].map(first).fillna(loaded.folder.name)

    def text(column: str, carried: bool) -> list:
        return [v or None for v in c[column]] if carried else [None] * len(c)

    expected = sorted(
        zip(
            loaded.ids(c["customer_id"]),
            (date.fromisoformat(d) for d in signup),
            text("country", carries.country),
            text("city", carries.city),
            (int(y) if y and carries.birth_year else None for y in c["birth_year"]),
            (
                carries.channel.get(ch) if carries.channel else None
                for ch in c["acquisition_channel"]
            ),
            (carries.opt_in.get(v) if carries.opt_in else None for v in c["marketing_opt_in"]),
            strict=True,
        )
    )
    got = sorted(
        loaded.rows(
            "SELECT customer_id, signup_date, country, city, birth_year, acquisition_channel, "
            "marketing_opt_in FROM raw.customers"
        )
    )
    assert got == expected


def test_the_other_contract_files_name_the_layouts_customers(loaded):
    """Referrals, surveys and events stay contract files, their customers renamed to the
    layout's ids: every row loads, none names an unknown customer."""
    r, s, e = (loaded.contract[t] for t in ("referrals", "surveys", "events"))
    assert len(r) and len(s) and len(e)

    def ids(values: pd.Series) -> list:
        present = values != ""
        out = pd.Series([None] * len(values), index=values.index, dtype=object)
        out[present] = loaded.ids(values[present]).to_numpy()
        return list(out)

    assert sorted(
        loaded.rows(
            "SELECT referral_id, referrer_customer_id, referee_customer_id FROM raw.referrals"
        )
    ) == sorted(
        zip(
            r["referral_id"],
            ids(r["referrer_customer_id"]),
            ids(r["referee_customer_id"]),
            strict=True,
        )
    )
    assert sorted(loaded.rows("SELECT response_id, customer_id FROM raw.surveys")) == sorted(
        zip(s["response_id"], ids(s["customer_id"]), strict=True)
    )
    assert sorted(loaded.rows("SELECT event_id, customer_id FROM raw.events")) == sorted(
        zip(e["event_id"], ids(e["customer_id"]), strict=True)
    )
    known = {row[0] for row in loaded.rows("SELECT customer_id FROM raw.customers")}
    named = loaded.rows(
        "SELECT referrer_customer_id FROM raw.referrals UNION "
        "SELECT referee_customer_id FROM raw.referrals WHERE referee_customer_id IS NOT NULL "
        "UNION SELECT customer_id FROM raw.surveys UNION SELECT customer_id FROM raw.events"
    )
    assert {row[0] for row in named} <= known


def test_rows_the_pipeline_skips_by_design(loaded):
    """The vendor rows that are no order or customer (line items, lost deals, merged
    contacts, failed payments) are in the sample and skipped, with the expected counts."""
    carries = CARRIES[loaded.layout]
    skipped = loaded.result.sources[loaded.layout].get("skipped_reasons", {})
    assert set(skipped) == set(carries.skipped)
    for reason, kind in carries.skipped.items():
        assert skipped[reason] == _expected_skips(loaded, kind), kind


def _expected_skips(loaded: Loaded, kind: str) -> int:
    o = loaded.contract["orders"]
    if kind == "orders not completed":
        return int((o["status"] != "completed").sum())
    if kind == "line items":
        lines = _read(loaded.folder, "orders_export")
        return len(lines) - lines["Name"].nunique()
    if kind == "merged contacts":
        contacts = _read(loaded.folder, "Contact")
        merged = contacts[contacts["MasterRecordId"] != ""]
        # every merged contact's master is a live sample contact, created no later
        live = contacts[contacts["MasterRecordId"] == ""].set_index("Id")
        assert merged["MasterRecordId"].isin(live.index).all()
        assert (merged["CreatedDate"] >= merged["MasterRecordId"].map(live["CreatedDate"])).all()
        assert len(merged) > 0
        return len(merged)
    assert kind == "failed payments"
    failed = (_read(loaded.folder, "unified_payments")["Status"] == "Failed").sum()
    assert failed > 0
    return int(failed)


# ---- the vendors' own ids ----------------------------------------------------------


def _case_safe_suffix(id15: str) -> str:
    """Salesforce's 3-character suffix of a 15-character id, written out plainly."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    return "".join(
        alphabet[sum(1 << i for i, ch in enumerate(id15[k : k + 5]) if "A" <= ch <= "Z")]
        for k in (0, 5, 10)
    )


def test_salesforce_contact_ids_are_18_characters_with_the_case_safe_suffix():
    # ids of the hand-made fixture (tests/fixtures/sources/salesforce), suffixes included
    assert _case_safe_suffix("0035g00000U8JZp") == "AAN"
    assert _case_safe_suffix("0035g00000NCFba") == "AAH"
    numbers = pd.Series([f"C{n:07d}" for n in [*range(1, 5001), 999_999, 9_999_999]])
    ids = salesforce_layout.source_ids(numbers)
    assert ids.str.fullmatch(r"003[0-9A-Za-z]{15}").all()
    assert [i[15:] for i in ids] == [_case_safe_suffix(i[:15]) for i in ids]
    assert ids.is_unique
    # an id depends on the number only (the composer renames other tables' subsets)
    assert (salesforce_layout.source_ids(numbers[::-7]) == ids[::-7]).all()
    assert (salesforce_layout.customer_ids(numbers) == "salesforce:" + ids).all()


def test_stripe_customer_ids_are_cus_and_14_alphanumerics():
    numbers = pd.Series([f"C{n:07d}" for n in range(1, 5001)])
    ids = stripe_layout.source_ids(numbers)
    assert ids.str.fullmatch(r"cus_[0-9A-Za-z]{14}").all()
    assert ids.is_unique
    assert (stripe_layout.source_ids(numbers[::-7]) == ids[::-7]).all()
    assert (stripe_layout.customer_ids(numbers) == "stripe:" + ids).all()


def test_vendor_file_formats(loaded):
    """Each vendor's own way of writing values, as its export screen does."""
    folder = loaded.folder
    if loaded.layout == "shopify":
        orders = _read(folder, "orders_export")
        first = orders[orders["Email"] != ""]
        assert first["Created at"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} -0500").all()
    elif loaded.layout == "hubspot":
        deals = _read(folder, f"hubspot-crm-exports-all-deals-{folder.name}")
        assert deals["Close Date"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}").all()
    elif loaded.layout == "salesforce":
        # Data Loader: header and every value double-quoted
        quoted = re.compile(r'"[^"]*"(,"[^"]*")*')
        for name in ("Contact.csv", "Opportunity.csv"):
            lines = (folder / name).read_text(encoding="utf-8").splitlines()
            assert all(quoted.fullmatch(line) for line in lines), name
        opportunities = _read(folder, "Opportunity")
        assert opportunities["CloseDate"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
        assert (
            opportunities["CreatedDate"]
            .str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000\+0000")
            .all()
        )
        won = opportunities[opportunities["IsWon"] == "true"]
        assert (won["StageName"] == "Closed Won").all()
        assert set(opportunities["StageName"]) == {
            "Closed Won",
            "Closed Lost",
            "Negotiation/Review",
        }
        contacts = _read(folder, "Contact")
        assert set(contacts["LeadSource"]) >= {"Partner Referral", "Web"}
        # 18-character ids: contacts, accounts, opportunities, the ids they name
        ids = pd.concat(
            [contacts[["Id", "AccountId"]].stack(), opportunities[["Id", "AccountId"]].stack()]
        )
        ids = pd.concat([ids, opportunities["ContactId"], contacts["MasterRecordId"]])
        ids = ids[ids != ""]
        assert ids.str.fullmatch(r"00[136][0-9A-Za-z]{15}").all()
        assert all(i[15:] == _case_safe_suffix(i[:15]) for i in ids)
    else:
        payments = _read(folder, "unified_payments")
        assert set(payments["Currency"]) == {"usd", "eur", "gbp"}
        assert payments["Amount"].str.fullmatch(r"\d+\.\d{2}").all()
        assert payments["Created date (UTC)"].is_monotonic_decreasing  # newest first
        assert set(payments["Status"]) == {"Paid", "Refunded", "Canceled", "Pending", "Failed"}
        guests = payments[payments["Customer ID"] == ""]
        assert len(guests) > 0 and (guests["Customer Email"] != "").all()
