"""Mention Me's CRM feed: one row per referred customer (the referee), with the referrer in
`Referred By ...` and the referral's progress as dates.  The merchant ids are the shop's
(Shopify) Customer IDs; a friend without an account has only an email.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.sample.layouts import shopify
from pipelines.sample.layouts.contract import Tables, formatted, utc, write_csv

_TIME = "%Y-%m-%d %H:%M:%S"
# contract channel -> the share method Mention Me names
SHARE_METHOD = {
    "email": "Email",
    "social": "Facebook",
    "link": "Share link",
    "sms": "SMS",
    "app": "App",
    "in_store": "In store",
    "other": "Other",
    "": "",
}


def write(tables: Tables, folder: Path) -> None:
    write_csv(crm_feed(tables), folder / "crm_feed.csv")


def crm_feed(tables: Tables) -> pd.DataFrame:
    r = tables["referrals"]
    customers = tables["customers"].set_index("customer_id")
    has_referee = r["referee_customer_id"] != ""
    referee = r["referee_customer_id"].where(has_referee, r["referrer_customer_id"])
    signup = pd.to_datetime(referee.map(customers["signup_date"]), utc=True)
    sent = utc(r["sent_at"])
    converted = r["status"] == "converted"
    signed_up = has_referee & (converted | (r["status"] == "signed_up"))
    return pd.DataFrame(
        {
            "Customer Firstname": referee.map(customers["first_name"]).where(has_referee, ""),
            "Customer Surname": referee.map(customers["last_name"]).where(has_referee, ""),
            "Customer Email": r["referee_email"],
            "Merchant Customer ID": shopify.source_ids(
                r["referee_customer_id"].where(has_referee, "C0")
            ).where(has_referee, ""),
            "Customer Recognised Date": formatted(signup.where(has_referee, sent), _TIME),
            "Referred By Customer Email": r["referrer_customer_id"].map(customers["email"]),
            "Referred By Merchant Customer ID": shopify.source_ids(r["referrer_customer_id"]),
            "Opted In To Marketing Email": referee.map(customers["marketing_opt_in"])
            .map({"true": "1", "false": "0"})
            .where(has_referee, "0"),
            "Referred Date": formatted(sent, _TIME),
            "Referred Signed Up Date": formatted(signup, _TIME).where(signed_up, ""),
            "Referred Rewarded Date": formatted(utc(r["converted_at"]), _TIME).where(
                converted & (r["reward_referrer_amount"] != ""), ""
            ),
            "Referred Qualified Date": formatted(utc(r["converted_at"]), _TIME).where(
                converted, ""
            ),
            "Referred Situation": "postpurchase",
            "Share Method": r["channel"].map(SHARE_METHOD),
        }
    )
