"""Shopify admin exports: `customers_export.csv` (current layout) and `orders_export.csv`
(one row per line item, the order's fields on its first row only; no customer id, the
email joins).  Shop time zone UTC-5: `Created at` is written with `-0500`.
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

SHOP_OFFSET = pd.Timedelta(hours=-5)
_SHOP_TIME = "%Y-%m-%d %H:%M:%S -0500"
# the Financial Status of a contract status; every 8th completed order is partially refunded
_FINANCIAL_STATUS = {
    "completed": "paid",
    "refunded": "refunded",
    "cancelled": "voided",
    "pending": "pending",
}
_PRODUCTS = ("Crew Tee", "Canvas Tote", "Ceramic Mug", "Wool Socks", "Travel Bottle")


def source_ids(contract_ids: pd.Series) -> pd.Series:
    """Shopify's 13-digit Customer ID of a sample customer."""
    return pd.Series(
        (7_000_000_000_000 + customer_number(contract_ids)).astype(str), index=contract_ids.index
    )


def customer_ids(contract_ids: pd.Series) -> pd.Series:
    """The pipeline's id of a customer first seen in Shopify's customers export."""
    return "shopify:" + source_ids(contract_ids)


def write(tables: Tables, folder: Path) -> None:
    write_csv(customers_export(tables), folder / "customers_export.csv")
    write_csv(orders_export(tables), folder / "orders_export.csv")


def customers_export(tables: Tables) -> pd.DataFrame:
    c = tables["customers"]
    orders = tables["orders"]
    done = orders[orders["status"] == "completed"]
    spent = cents(done["amount"]).groupby(done["customer_id"].to_numpy()).sum()
    count = orders.groupby("customer_id").size()
    blank = pd.Series("", index=c.index)
    return pd.DataFrame(
        {
            "Customer ID": source_ids(c["customer_id"]),
            "First Name": c["first_name"],
            "Last Name": c["last_name"],
            "Email": c["email"],
            "Accepts Email Marketing": c["marketing_opt_in"].map({"true": "yes", "false": "no"}),
            "Default Address Company": blank,
            "Default Address Address1": blank,
            "Default Address Address2": blank,
            "Default Address City": c["city"],
            "Default Address Province Code": blank,
            "Default Address Country Code": c["country"],
            "Default Address Zip": blank,
            "Default Address Phone": blank,
            "Phone": c["phone"],
            "Accepts SMS Marketing": "no",
            "Total Spent": money(c["customer_id"].map(spent).fillna(0).to_numpy()),
            "Total Orders": c["customer_id"].map(count).fillna(0).astype(int).astype(str),
            "Note": blank,
            "Tax Exempt": "no",
            "Tags": blank,
        }
    )


def order_names(order_ids: pd.Series) -> pd.Series:
    """`O00000042` -> `#1042`, as Shopify numbers orders."""
    return "#" + (1000 + order_ids.str.slice(1).astype(np.int64)).astype(str)


def orders_export(tables: Tables) -> pd.DataFrame:
    """One row per line item: 1-3 items per order; a completed order of every 8th number is
    partially refunded (Subtotal - Refunded Amount = the contract amount)."""
    o = tables["orders"].reset_index(drop=True)
    customers = tables["customers"].set_index("customer_id")
    emails, opt_in = customers["email"], customers["marketing_opt_in"]
    number = o["order_id"].str.slice(1).astype(np.int64)
    amount = cents(o["amount"])
    partial = (o["status"] == "completed") & (number % 8 == 0) & (amount > 0)
    refund = np.where(partial, np.maximum(1, amount // 5), 0)
    refund = np.where(o["status"] == "refunded", amount, refund)
    subtotal = amount + np.where(partial, refund, 0)
    status = o["status"].map(_FINANCIAL_STATUS).where(~partial, "partially_refunded")
    created = utc(o["order_date"]) + SHOP_OFFSET
    discount = cents(o["discount_amount"])
    order = pd.DataFrame(
        {
            "Name": order_names(o["order_id"]),
            "Email": o["customer_id"].map(emails),
            "Financial Status": status,
            "Paid at": formatted(created, _SHOP_TIME).where(
                ~o["status"].isin(["pending", "cancelled"]), ""
            ),
            "Fulfillment Status": np.where(o["status"] == "completed", "fulfilled", "unfulfilled"),
            "Accepts Marketing": o["customer_id"].map(opt_in).map({"true": "yes", "false": "no"}),
            "Currency": o["currency"].replace("", "USD"),
            "Subtotal": money(subtotal),
            "Shipping": "0.00",
            "Taxes": "0.00",
            "Total": money(subtotal),
            "Discount Code": np.where(discount > 0, "WELCOME10", ""),
            "Discount Amount": money(discount),
            "Created at": formatted(created, _SHOP_TIME),
            "Cancelled at": formatted(created + pd.Timedelta(hours=1), _SHOP_TIME).where(
                o["status"] == "cancelled", ""
            ),
            "Refunded Amount": money(refund),
            "Id": (5_500_000_000_000 + number).astype(str),
            "Source": "web",
        }
    )
    # line items: order i has 1 + i % 3 of them, their prices adding up to the goods' value
    items = (1 + number % 3).to_numpy()
    rows = np.repeat(np.arange(len(o)), items)
    position = np.arange(len(rows)) - np.repeat(np.cumsum(items) - items, items)
    goods = (subtotal + discount)[rows]
    share = goods // items[rows]
    price = np.where(position == 0, goods - share * (items[rows] - 1), share)
    lines = order.iloc[rows].reset_index(drop=True)
    item_status = lines["Fulfillment Status"].to_numpy()
    first = position == 0
    lines.loc[~first, lines.columns.difference(["Name"])] = ""
    product = (number.to_numpy()[rows] + position) % len(_PRODUCTS)
    at = lines.columns.get_loc("Created at") + 1
    lines.insert(at, "Lineitem quantity", "1")
    lines.insert(at + 1, "Lineitem name", [_PRODUCTS[p] for p in product])
    lines.insert(at + 2, "Lineitem price", money(price).to_numpy())
    lines.insert(at + 3, "Lineitem sku", [f"SKU-{p:03d}" for p in product])
    lines.insert(at + 4, "Lineitem fulfillment status", item_status)
    lines["Vendor"] = "Sample Goods"
    return lines
