"""HubSpot CRM exports with property labels as headers: the contacts export and the deals
export (a completed order is a Closed Won deal; the other statuses are open or lost deals,
which the pipeline skips).  HubSpot writes the portal's time zone without an offset: UTC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.layouts.contract import Tables, customer_number, formatted, utc, write_csv

_TIME = "%Y-%m-%d %H:%M"
# contract acquisition channel -> Original Source (label); partner and affiliate have none
ORIGINAL_SOURCE = {
    "organic": "Organic Search",
    "paid_search": "Paid Search",
    "paid_social": "Paid Social",
    "social": "Organic Social",
    "email": "Email Marketing",
    "referral": "Referrals",
    "other": "Other Campaigns",
    "partner": "Other Campaigns",
    "affiliate": "Other Campaigns",
    "": "",
}
_DEAL_STAGE = {
    "completed": "Closed Won",
    "refunded": "Closed Lost",
    "cancelled": "Closed Lost",
    "pending": "Contract Sent",
}


def source_ids(contract_ids: pd.Series) -> pd.Series:
    """HubSpot's Record ID of a sample customer."""
    return pd.Series(
        (100_000 + customer_number(contract_ids)).astype(str), index=contract_ids.index
    )


def customer_ids(contract_ids: pd.Series) -> pd.Series:
    return "hubspot:" + source_ids(contract_ids)


def write(tables: Tables, folder: Path) -> None:
    date = folder.name
    write_csv(contacts_export(tables), folder / f"hubspot-crm-exports-all-contacts-{date}.csv")
    write_csv(deals_export(tables), folder / f"hubspot-crm-exports-all-deals-{date}.csv")


def _deal_ids(order_ids: pd.Series) -> pd.Series:
    return (9_000_000_000 + order_ids.str.slice(1).astype(np.int64)).astype(str)


def contacts_export(tables: Tables, emails: pd.Series | None = None) -> pd.DataFrame:
    """The contacts export; `emails` replaces the Email column (the mixed layout writes
    some in another case).  Create Date: the signup day at a time of day drawn from the id."""
    c = tables["customers"]
    number = customer_number(c["customer_id"])
    created = (
        pd.to_datetime(c["signup_date"])
        + pd.to_timedelta(8 + number % 12, unit="h")
        + pd.to_timedelta(number % 60, unit="m")
    )
    orders = tables["orders"]
    deal_ids = (
        pd.Series(_deal_ids(orders["order_id"]).to_numpy(), index=orders["customer_id"].to_numpy())
        .groupby(level=0)
        .agg(";".join)
    )
    won = orders[orders["status"] == "completed"]
    customer_since = (
        utc(won["order_date"]).groupby(won["customer_id"].to_numpy()).min().dt.tz_localize(None)
    )
    # a contact exists before its first deal closes
    created = created.where(
        ~(c["customer_id"].map(customer_since) < created), c["customer_id"].map(customer_since)
    )
    return pd.DataFrame(
        {
            "Record ID": source_ids(c["customer_id"]),
            "First Name": c["first_name"],
            "Last Name": c["last_name"],
            "Email": c["email"] if emails is None else emails,
            "Phone Number": c["phone"],
            "City": c["city"],
            "Create Date": formatted(created, _TIME),
            "Lifecycle Stage": np.where(
                c["customer_id"].isin(customer_since.index), "Customer", "Lead"
            ),
            "Original Source": c["acquisition_channel"].map(ORIGINAL_SOURCE),
            "Original Source Drill-Down 1": "",
            "Became a Customer Date": formatted(c["customer_id"].map(customer_since), _TIME),
            "Number of Associated Deals": c["customer_id"]
            .map(deal_ids.str.count(";") + 1)
            .fillna(0)
            .astype(int)
            .astype(str),
            "Associated Deal IDs": c["customer_id"].map(deal_ids).fillna(""),
            "Unsubscribed from all email": c["marketing_opt_in"].map(
                {"true": "false", "false": "true"}
            ),
            "Last Modified Date": formatted(utc(c["updated_at"]).dt.tz_localize(None), _TIME),
        }
    )


def deals_export(tables: Tables) -> pd.DataFrame:
    o = tables["orders"]
    at = utc(o["order_date"]).dt.tz_localize(None)
    signup = pd.to_datetime(
        o["customer_id"].map(tables["customers"].set_index("customer_id")["signup_date"])
    )
    stage = o["status"].map(_DEAL_STAGE)
    return pd.DataFrame(
        {
            "Record ID": _deal_ids(o["order_id"]),
            "Deal Name": "Order " + o["order_id"],
            "Deal Stage": stage,
            "Pipeline": "Sales Pipeline",
            "Close Date": formatted(at, _TIME),
            "Amount": o["amount"],
            "Currency": o["currency"],
            "Create Date": formatted(
                (at - pd.Timedelta(days=2)).where(at - pd.Timedelta(days=2) > signup, at), _TIME
            ),
            "Is Closed Won": np.where(stage == "Closed Won", "true", "false"),
            "Associated Contact IDs": source_ids(o["customer_id"]),
            "Last Modified Date": formatted(utc(o["updated_at"]).dt.tz_localize(None), _TIME),
        }
    )
