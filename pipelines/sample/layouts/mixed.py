"""The mixed layout: a shop on Shopify (customers and orders) with its contacts in HubSpot,
referrals in Mention Me, advocate rewards in Friendbuy and NPS/CSAT in Delighted; events,
marketing spend, programme costs and FX rates stay contract files (none of these systems
exports them), their customers named as the pipeline names them (`shopify:<Customer ID>`:
Shopify has the lowest precedence of the customers' systems).

`reduce` is what these files can carry of the contract data; the rest is blanked or
mapped, so that the same data written as a contract export (`write_reduced_contract`)
must give the same features, ROI and segments (tests/test_sample_layouts.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.layouts import delighted, friendbuy, hubspot, mention_me, shopify
from pipelines.sample.layouts.contract import Tables, customer_number, formatted, utc, write_csv

FILLS = ("customers", "orders", "referrals", "surveys")
# acquisition channels HubSpot's Original Source has no value for
_NO_ORIGINAL_SOURCE = {"partner": "other", "affiliate": "other"}


def reduce(tables: Tables) -> Tables:
    """The contract data these files carry:
    - customers: no birth year, gender or firmographics (no system here has them);
      partner and affiliate channels are HubSpot's Other Campaigns (-> other); updated_at
      to the minute (HubSpot's Last Modified Date);
    - orders: no product category, no updated_at;
    - referrals: Mention Me knows sent, signed up and converted, not expired or rejected
      (-> sent); the friend's reward is a coupon in no export (-> blank), the advocate's is
      Friendbuy credit (reward type credit); a friend's email that is a customer's names
      that customer; a second referral of one referrer to one friend is one referral
      (Mention Me's key); no updated_at; two conversions of one friend at the same second
      are a second apart (the marts break that tie by referral id, and Mention Me's ids
      are not the contract's)."""
    out = dict(tables)
    c = tables["customers"].copy()
    for column in ("birth_year", "gender", "industry", "company_size"):
        c[column] = ""
    c["acquisition_channel"] = c["acquisition_channel"].replace(_NO_ORIGINAL_SOURCE)
    c["updated_at"] = np.where(c["updated_at"] == "", "", c["updated_at"].str.slice(0, 16) + ":00")
    out["customers"] = c

    o = tables["orders"].copy()
    o["product_category"] = ""
    o["updated_at"] = ""
    o["currency"] = o["currency"].replace("", "USD")
    out["orders"] = o

    r = tables["referrals"].copy()
    r["status"] = r["status"].replace({"expired": "sent", "rejected": "sent"})
    r["reward_referee_amount"] = ""
    rewarded = r["reward_referrer_amount"] != ""
    r["reward_type"] = np.where(rewarded, "credit", "")
    r["reward_currency"] = np.where(rewarded, r["reward_currency"].replace("", "USD"), "")
    by_email = pd.Series(c["customer_id"].to_numpy(), index=c["email"].str.strip().str.lower())
    friend = r["referee_email"].str.strip().str.lower()
    unnamed = r["referee_customer_id"] == ""
    r.loc[unnamed, "referee_customer_id"] = friend[unnamed].map(by_email).fillna("").to_numpy()
    r["updated_at"] = ""
    r["converted_at"] = _untied(r)
    pair = (
        r["referrer_customer_id"]
        + ">"
        + friend.where(r["referee_email"] != "", r["referee_customer_id"])
    )
    out["referrals"] = r[~pair.duplicated()].reset_index(drop=True)
    return out


def _untied(r: pd.DataFrame) -> pd.Series:
    converted = (r["status"] == "converted") & (r["referee_customer_id"] != "")
    rank = r[converted].groupby(["referee_customer_id", "converted_at"]).cumcount()
    shifted = utc(r.loc[converted, "converted_at"]) + pd.to_timedelta(rank, unit="s")
    out = r["converted_at"].copy()
    out[converted] = formatted(shifted, "%Y-%m-%d %H:%M:%S")
    return out


def write(tables: Tables, folder: Path) -> None:
    shopify.write(tables, folder)
    contacts = hubspot.contacts_export(tables, emails=_hubspot_emails(tables["customers"]))
    contacts = contacts.drop(
        columns=["Became a Customer Date", "Number of Associated Deals", "Associated Deal IDs"]
    )
    write_csv(contacts, folder / f"hubspot-crm-exports-all-contacts-{folder.name}.csv")
    mention_me.write(tables, folder)
    friendbuy.write(tables, folder)
    delighted.write(tables, folder)


def _hubspot_emails(customers: pd.DataFrame) -> pd.Series:
    """The same people as in Shopify, some typed differently: every 4th in capitals, every
    6th with a blank before it (identity links them on the normalised email)."""
    number = customer_number(customers["customer_id"])
    email = customers["email"]
    email = email.where(number % 4 != 0, email.str.upper())
    return email.where(number % 6 != 0, " " + email)
