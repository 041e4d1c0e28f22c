"""Writing one export: every contract table as CSV, the ground truth, then the manifest.

Money is written from integer cents as plain `d.cc` text.  CSV is written with
`pyarrow.csv` in chunks, and the manifest checksum is computed by streaming the written
file.  Same arguments => byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines.sample.dates import DAY, epoch_seconds, month_index, month_start
from pipelines.sample.draws import S_MARKETING, S_PROGRAM, make_rng
from pipelines.sample.params import (
    BEHAVIOUR_GROUPS,
    CATEGORIES,
    CHANNEL_CODE,
    CITY_NAMES,
    COUNTRIES,
    CURRENCIES,
    FIRST_NAMES,
    FX_RATES,
    GENDERS,
    LAST_NAMES,
    PAID_CAC,
    PAID_CHANNELS,
)
from pipelines.sample.population import Population
from pipelines.schemas import (
    ACQUISITION_CHANNELS,
    EVENT_TYPES,
    ORDER_STATUSES,
    REFERRAL_CHANNELS,
    REFERRAL_STATUSES,
    REWARD_TYPES,
    TABLES,
)

BASE_CURRENCY = "USD"

# Contract tables the sample leaves out: erasure requests come from the operator, not the CRM.
NOT_GENERATED = ("erasure_requests",)
# Files of one export, in contract order, the order they are written (manifest.json comes
# last).  Every other contract table needs a writer below (test_sample checks them all).
EXPORT_TABLES = tuple(t for t in TABLES if t not in NOT_GENERATED)
GROUND_TRUTH_DIR = "_ground_truth"

_ID_WIDTH = {"C": 7, "O": 8, "R": 6, "S": 7, "E": 9}
_CHUNK_ROWS = 500_000


def _ids(prefix: str, nums: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    text = pc.cast(pa.array(np.asarray(nums, dtype=np.int64), mask=mask), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(text, _ID_WIDTH[prefix], "0"), "")


def _emails(nums: np.ndarray, upper: bool = False) -> pa.Array:
    text = pc.utf8_lpad(
        pc.cast(pa.array(np.asarray(nums, dtype=np.int64)), pa.string()), _ID_WIDTH["C"], "0"
    )
    if upper:
        return pc.binary_join_element_wise("USER", text, "@EXAMPLE.COM", "")
    return pc.binary_join_element_wise("user", text, "@example.com", "")


def _money(cents: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Integer cents as plain decimal text 'd.cc' (null where mask)."""
    cents = np.asarray(cents, dtype=np.int64)
    if (cents[~mask] if mask is not None else cents).min(initial=0) < 0:
        raise ValueError("negative money")
    whole = pc.cast(pa.array(cents // 100, mask=mask), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


def _ts(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64), type=pa.timestamp("s"), mask=mask)


def _dates(seconds: np.ndarray) -> pa.Array:
    return pa.array((np.asarray(seconds, dtype=np.int64) // DAY).astype(np.int32), type=pa.date32())


def _labels(values: Sequence[str], codes: np.ndarray) -> pa.Array:
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    return pc.take(
        pa.array(list(values), pa.string()),
        pa.array(np.maximum(codes, 0), mask=mask if mask.any() else None),
    )


def _ints(values: np.ndarray) -> pa.Array:
    values = np.asarray(values, dtype=np.int64)
    return pa.array(values, mask=values < 0)


_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none")


def _write_csv(
    path: Path, table: str, n_rows: int, chunk: Callable[[slice], dict[str, pa.Array]]
) -> dict[str, int | str]:
    """Write a contract table in chunks (header = the contract's columns, unquoted) and
    return its manifest entry (data rows and sha256 of the file, streamed)."""
    columns = TABLES[table].column_names
    with open(path, "wb") as fh:
        fh.write((",".join(columns) + "\n").encode())
        for start in range(0, n_rows, _CHUNK_ROWS):
            data = chunk(slice(start, min(start + _CHUNK_ROWS, n_rows)))
            pacsv.write_csv(pa.table({col: data[col] for col in columns}), fh, _WRITE_OPTIONS)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return {"rows": n_rows, "sha256": digest.hexdigest()}


def write_export(pop: Population, out_dir: Path, export_date: date) -> Path:
    folder = Path(out_dir) / export_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest_path.unlink(missing_ok=True)  # an export is complete only once this exists
    export_ts = epoch_seconds(export_date)
    files: dict[str, dict[str, int | str]] = {}
    c, o, r, s, e = pop.customers, pop.orders, pop.referrals, pop.surveys, pop.events
    n = len(c["group"])

    def customers(sl: slice) -> dict[str, pa.Array]:
        ids = np.arange(sl.start + 1, sl.stop + 1)
        m = len(ids)
        empty = pa.nulls(m, pa.string())
        return {
            "customer_id": _ids("C", ids),
            "email": _emails(ids),
            "first_name": _labels(FIRST_NAMES, c["first_name"][sl]),
            "last_name": _labels(LAST_NAMES, c["last_name"][sl]),
            "phone": pc.binary_join_element_wise(
                "+1555", pc.utf8_lpad(pc.cast(pa.array(c["phone"][sl]), pa.string()), 7, "0"), ""
            ),
            "signup_date": _dates(c["signup_ts"][sl]),
            "country": _labels(COUNTRIES, c["country"][sl]),
            "city": _labels(CITY_NAMES, c["city"][sl]),
            "birth_year": _ints(c["birth_year"][sl]),
            "gender": _labels(GENDERS, c["gender"][sl]),
            "industry": empty,
            "company_size": empty,
            "acquisition_channel": _labels(ACQUISITION_CHANNELS, c["channel"][sl]),
            "marketing_opt_in": pa.array(c["opt_in"][sl]),
            "updated_at": _ts(c["updated_ts"][sl]),
        }

    def orders(sl: slice) -> dict[str, pa.Array]:
        return {
            "order_id": _ids("O", o["id"][sl]),
            "customer_id": _ids("C", o["cust"][sl].astype(np.int64) + 1),
            "order_date": _ts(o["ts"][sl]),
            "amount": _money(o["amount"][sl]),
            "currency": _labels(CURRENCIES, o["currency"][sl]),
            "status": _labels(ORDER_STATUSES, o["status"][sl]),
            "product_category": _labels(CATEGORIES, o["category"][sl]),
            "discount_amount": _money(o["discount"][sl]),
            "updated_at": _ts(o["updated_ts"][sl]),
        }

    def referrals(sl: slice) -> dict[str, pa.Array]:
        referee = r["referee"][sl]
        kind = r["email_kind"][sl]
        no_referee = referee < 0
        own = _emails(np.where(no_referee, r["referrer"][sl], referee) + 1)
        friend = pc.binary_join_element_wise(
            "friend",
            pc.utf8_lpad(pc.cast(pa.array(r["id"][sl]), pa.string()), 6, "0"),
            "@example.org",
            "",
        )
        upper = _emails(r["referrer"][sl] + 1, upper=True)
        email = pc.if_else(pa.array(kind == 0), own, pc.if_else(pa.array(kind == 2), upper, friend))
        conv = r["converted_ts"][sl]
        return {
            "referral_id": _ids("R", r["id"][sl]),
            "referrer_customer_id": _ids("C", r["referrer"][sl] + 1),
            "referee_email": email,
            "referee_customer_id": _ids("C", referee + 1, mask=no_referee),
            "sent_at": _ts(r["sent_ts"][sl]),
            "channel": _labels(REFERRAL_CHANNELS, r["channel"][sl]),
            "status": _labels(REFERRAL_STATUSES, r["status"][sl]),
            "converted_at": _ts(conv, mask=conv < 0),
            "reward_referrer_amount": _money(
                r["reward_referrer"][sl], r["reward_referrer"][sl] < 0
            ),
            "reward_referee_amount": _money(r["reward_referee"][sl], r["reward_referee"][sl] < 0),
            "reward_currency": pa.array([BASE_CURRENCY] * (sl.stop - sl.start), pa.string()),
            "reward_type": _labels(REWARD_TYPES, r["reward_type"][sl]),
            "updated_at": _ts(r["updated_ts"][sl]),
        }

    def surveys(sl: slice) -> dict[str, pa.Array]:
        return {
            "response_id": _ids("S", s["id"][sl]),
            "customer_id": _ids("C", s["cust"][sl].astype(np.int64) + 1),
            "responded_at": _ts(s["ts"][sl]),
            "nps": _ints(s["nps"][sl]),
            "csat": _ints(s["csat"][sl]),
        }

    def events(sl: slice) -> dict[str, pa.Array]:
        return {
            "event_id": _ids("E", e["id"][sl]),
            "customer_id": _ids("C", e["cust"][sl].astype(np.int64) + 1),
            "occurred_at": _ts(e["ts"][sl]),
            "event_type": _labels(EVENT_TYPES, e["type"][sl]),
        }

    # marketing_spend: 24 months up to the export date; new_customers from the signups
    end_ym = export_date.year * 12 + export_date.month - 1
    months = np.arange(end_ym - 23, end_ym + 1)
    seen = c["signup_ts"] < export_ts
    signup_ym = month_index(c["signup_ts"][seen])
    chan = c["channel"][seen]
    codes = np.array([CHANNEL_CODE[ch] for ch in PAID_CHANNELS])
    counts = np.zeros((len(months), len(codes)), dtype=np.int64)
    in_range = (signup_ym >= months[0]) & (signup_ym <= months[-1])
    for j, code in enumerate(codes):
        sel = in_range & (chan == code)
        counts[:, j] = np.bincount(signup_ym[sel] - months[0], minlength=len(months))
    base = max(1.0, pop.base_customers / 2000)
    spend = np.zeros_like(counts)
    for i, ym in enumerate(months):
        noise = make_rng(pop.seed, S_MARKETING, int(ym)).random((2, len(codes)))
        spend[i] = np.round(
            100 * PAID_CAC * (counts[i] * (0.85 + 0.3 * noise[0]) + base * (0.5 + noise[1]))
        )
    n_ms = counts.size

    def marketing(sl: slice) -> dict[str, pa.Array]:
        month_secs = np.array([epoch_seconds(month_start(int(m))) for m in months])
        return {
            "month": _dates(np.repeat(month_secs, len(codes))),
            "channel": pa.array(list(PAID_CHANNELS) * len(months), pa.string()),
            "spend": _money(spend.ravel()),
            "new_customers": pa.array(counts.ravel()),
        }

    # referral program fixed costs: every month of the history, plus the month after
    first_ym = int(month_index(np.array([pop.history_start]))[0])
    cost_months = np.arange(first_ym, end_ym + 2)
    cost = np.array(
        [
            round(
                100
                * (500 + 0.25 * pop.base_customers)
                * (0.9 + 0.2 * make_rng(pop.seed, S_PROGRAM, int(ym)).random())
            )
            for ym in cost_months
        ],
        dtype=np.int64,
    )

    def program(sl: slice) -> dict[str, pa.Array]:
        return {
            "month": _dates(np.array([epoch_seconds(month_start(int(m))) for m in cost_months])),
            "cost": _money(cost),
        }

    def fx(sl: slice) -> dict[str, pa.Array]:
        return {
            "currency": pa.array(list(FX_RATES)),
            "rate_to_base": pa.array(list(FX_RATES.values())),
        }

    writers = {
        "customers": (n, customers),
        "orders": (len(o["id"]), orders),
        "referrals": (len(r["id"]), referrals),
        "surveys": (len(s["id"]), surveys),
        "events": (len(e["id"]), events),
        "marketing_spend": (n_ms, marketing),
        "referral_program_costs": (len(cost_months), program),
        "fx_rates": (len(FX_RATES), fx),
    }
    for table in EXPORT_TABLES:
        rows, fn = writers[table]
        files[f"{table}.csv"] = _write_csv(folder / f"{table}.csv", table, rows, fn)

    truth_dir = Path(out_dir) / GROUND_TRUTH_DIR
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth = pa.table(
        {
            "customer_id": _ids("C", np.arange(1, n + 1)),
            "behaviour_group": _labels(BEHAVIOUR_GROUPS, c["group"]),
        }
    )
    with open(truth_dir / f"{export_date.isoformat()}.csv", "wb") as fh:
        fh.write(b"customer_id,behaviour_group\n")
        pacsv.write_csv(truth, fh, _WRITE_OPTIONS)

    manifest = {"mode": "full", "files": files}
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest_path)
    return folder
