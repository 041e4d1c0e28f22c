"""Stripe Dashboard exports (time zone UTC): Payments > Export (`unified_payments.csv`) and
Customers > Export (`unified_customers.csv`), newest first as the Dashboard sorts them.

One payment per contract order: completed is Paid (every 8th partially refunded: Amount -
Amount Refunded = the contract amount), refunded Refunded, cancelled Canceled (an
authorisation released), pending Pending.  A few attempts failed before the payment that
went through (extra rows, Failed; the pipeline skips them), and a few payments are guest
checkouts (no Customer ID: the email finds the customer).  An order of 0.00 (fully
discounted) has no payment: Stripe charges at least 0.50.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.layouts.contract import (
    Tables,
    cents,
    customer_number,
    formatted,
    money,
    utc,
    write_csv,
)

_PAYMENT_TIME = "%Y-%m-%d %H:%M:%S"
_CUSTOMER_TIME = "%Y-%m-%d %H:%M"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SETTLEMENT = "usd"  # the account's currency: the Converted columns and the fees
# contract order status -> Status
_STATUS = {
    "completed": "Paid",
    "refunded": "Refunded",
    "cancelled": "Canceled",
    "pending": "Pending",
}
_PARTIAL_REFUND_EVERY = 8
_GUEST_EVERY = 17
_FAILED_EVERY = 23  # an order of every 23rd number had a failed attempt first
_DECLINES = (
    ("card_declined", "The bank did not return any further details with this decline."),
    ("insufficient_funds", "The bank returned the decline code `insufficient_funds`."),
    ("expired_card", "The bank returned the decline code `expired_card`."),
)
# keys of the failed attempts' ids: apart from every order number
_FAILED_KEY = np.uint64(1 << 40)
_CUSTOMER_SALT = np.uint64(0x5EED_C057)
_CHARGE_SALT = np.uint64(0x5EED_C4A6)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of 64-bit values that looks random."""
    z = np.asarray(values, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _base62(values: np.ndarray, width: int) -> np.ndarray:
    """The last `width` base62 digits of each value, as text."""
    rest = np.asarray(values, dtype=np.uint64).copy()
    digits = np.empty((len(rest), width), dtype=np.int64)
    for position in range(width - 1, -1, -1):
        digits[:, position] = (rest % np.uint64(62)).astype(np.int64)
        rest //= np.uint64(62)
    chars = np.ascontiguousarray(np.array(list(_BASE62), dtype="<U1")[digits])
    return chars.view(f"<U{width}").ravel()


def _random_ids(prefix: str, keys: np.ndarray, salt: np.uint64, width: int) -> np.ndarray:
    """`prefix` + `width` (>= 11) alphanumerics from the keys: random-looking, the same
    every time, and unique (the last 11 encode a bijection of the key; the ones before,
    10 at a time, further mixes of it)."""
    mixed = _mix(np.asarray(keys, dtype=np.uint64) ^ salt)
    text, more, left = _base62(mixed, 11), mixed, width - 11
    while left > 0:
        more = _mix(more)
        text = np.char.add(_base62(more, min(10, left)), text)
        left -= 10
    return np.char.add(prefix, text)


def source_ids(contract_ids: pd.Series) -> pd.Series:
    """The `cus_` id of a sample customer's customer object (14 alphanumerics)."""
    ids = _random_ids("cus_", customer_number(contract_ids), _CUSTOMER_SALT, 14)
    return pd.Series(ids, index=contract_ids.index)


def customer_ids(contract_ids: pd.Series) -> pd.Series:
    """The pipeline's id of a customer first seen as a Stripe customer object."""
    return "stripe:" + source_ids(contract_ids)


def write(tables: Tables, folder: Path) -> None:
    """`unified_payments.csv` and `unified_customers.csv` in `folder`, as downloaded (the
    customers file must not be `customers.csv`, the contract's name)."""
    payments = payments_export(tables)
    write_csv(payments.drop(columns="_at"), folder / "unified_payments.csv")
    write_csv(customers_export(tables, payments), folder / "unified_customers.csv")


def _rates(tables: Tables) -> dict[str, float]:
    """The sample's rates to USD, the account's currency (blank currency: USD)."""
    rates = tables["fx_rates"]
    return {
        **dict(zip(rates["currency"], rates["rate_to_base"].astype(float), strict=True)),
        "": 1.0,
    }


def payments_export(tables: Tables) -> pd.DataFrame:
    """Every order with an amount as a payment, plus the failed attempts; newest first.
    Keeps a sort column `_at`."""
    o = tables["orders"]
    o = o[cents(o["amount"]) > 0].reset_index(drop=True)
    customers = tables["customers"].set_index("customer_id")
    number = o["order_id"].str.slice(1).astype(np.int64).to_numpy()
    amount = cents(o["amount"]).to_numpy()
    done = (o["status"] == "completed").to_numpy()
    partial = done & (number % _PARTIAL_REFUND_EVERY == 0)
    refund = np.where(partial, np.maximum(1, amount // 4), 0)
    refund = np.where(o["status"] == "refunded", amount, refund)
    gross = amount + np.where(partial, refund, 0)
    captured = (o["status"].isin(["completed", "refunded", "pending"])).to_numpy()
    rate = o["currency"].map(_rates(tables)).to_numpy()
    converted = np.round(gross * rate).astype(np.int64)
    converted_refund = np.round(refund * rate).astype(np.int64)
    fee = np.where(captured, (converted * 29 + 500) // 1000 + 30, 0)
    created = utc(o["order_date"])
    guest = number % _GUEST_EVERY == 0
    paid = pd.DataFrame(
        {
            "id": _random_ids("ch_3", number, _CHARGE_SALT, 23),
            "Created date (UTC)": formatted(created, _PAYMENT_TIME),
            "Amount": money(gross),
            "Amount Refunded": money(refund),
            "Currency": o["currency"].replace("", _SETTLEMENT.upper()).str.lower(),
            "Captured": np.where(captured, "true", "false"),
            "Converted Amount": money(converted),
            "Converted Amount Refunded": money(converted_refund),
            "Converted Currency": _SETTLEMENT,
            "Decline Reason": "",
            "Description": "Order " + o["order_id"],
            "Fee": money(fee),
            "Refunded date (UTC)": formatted(utc(o["updated_at"]), _PAYMENT_TIME).where(
                refund > 0, ""
            ),
            "Statement Descriptor": "SAMPLE SHOP",
            "Status": o["status"].map(_STATUS),
            "Seller Message": np.where(done | (o["status"] == "refunded"), "Payment complete.", ""),
            "Taxes On Fee": "0.00",
            "Customer ID": source_ids(o["customer_id"]).where(~guest, ""),
            "Customer Description": "",
            "Customer Email": o["customer_id"].map(customers["email"]),
            "Invoice ID": "",
            "_at": created,
        }
    )
    # failed attempts: the same amount a few minutes before the payment that went through
    tried = np.flatnonzero(number % _FAILED_EVERY == 0)
    failed = paid.iloc[tried].copy()
    decline = [_DECLINES[n % len(_DECLINES)] for n in number[tried]]
    failed_at = created.iloc[tried] - pd.to_timedelta(2 + number[tried] % 9, unit="m")
    failed["id"] = _random_ids("ch_3", number[tried] + _FAILED_KEY, _CHARGE_SALT, 23)
    failed["Created date (UTC)"] = formatted(failed_at, _PAYMENT_TIME).to_numpy()
    failed["Amount"] = money(amount[tried]).to_numpy()
    failed["Amount Refunded"] = "0.00"
    failed["Converted Amount"] = money(np.round(amount[tried] * rate[tried])).to_numpy()
    failed["Converted Amount Refunded"] = "0.00"
    failed["Fee"] = "0.00"
    failed["Status"] = "Failed"
    failed["Captured"] = "false"
    failed["Decline Reason"] = [d[0] for d in decline]
    failed["Seller Message"] = [d[1] for d in decline]
    failed["Refunded date (UTC)"] = ""
    failed["_at"] = failed_at.set_axis(failed.index)
    rows = pd.concat([paid, failed], ignore_index=True)
    return rows.sort_values("_at", ascending=False, kind="stable").reset_index(drop=True)


def customers_export(tables: Tables, payments: pd.DataFrame) -> pd.DataFrame:
    """One customer object per sample customer, created on the signup day (at a time drawn
    from the number, before the first payment); newest first.  Total Spend, Payment Count
    and Refunded Volume in the account's currency, from `payments`."""
    c = tables["customers"]
    number = customer_number(c["customer_id"])
    day = pd.to_datetime(c["signup_date"], format="%Y-%m-%d").dt.tz_localize("UTC")
    drawn = (
        day + pd.to_timedelta(8 + number % 12, unit="h") + pd.to_timedelta(number % 60, unit="m")
    )
    orders = tables["orders"]
    first = utc(orders["order_date"]).groupby(orders["customer_id"].to_numpy()).min()
    first = c["customer_id"].map(first).dt.floor("min")
    created = drawn.where(~(drawn > first), first)
    created = created.where(created >= day, day)
    # totals of the settled payments per customer object (guest payments: no object)
    settled = payments[payments["Status"].isin(["Paid", "Refunded"])]
    by_object = settled["Customer ID"].to_numpy()
    refunded = cents(settled["Converted Amount Refunded"]).groupby(by_object).sum()
    spent = cents(settled["Converted Amount"]).groupby(by_object).sum() - refunded
    count = settled.groupby("Customer ID").size()
    ids = source_ids(c["customer_id"])
    out = pd.DataFrame(
        {
            "id": ids,
            "Description": "",
            "Email": c["email"],
            "Name": (c["first_name"] + " " + c["last_name"]).str.strip(),
            "Created (UTC)": formatted(created, _CUSTOMER_TIME),
            "Phone": c["phone"],
            "Delinquent": "false",
            "Plan": "",
            "Status": "",
            "Total Spend": money(ids.map(spent).fillna(0).to_numpy()),
            "Payment Count": ids.map(count).fillna(0).astype(int).astype(str),
            "Refunded Volume": money(ids.map(refunded).fillna(0).to_numpy()),
            "Dispute Losses": "0.00",
            "_at": created,
        }
    )
    return (
        out.sort_values("_at", ascending=False, kind="stable")
        .drop(columns="_at")
        .reset_index(drop=True)
    )
