"""Friendbuy's account credit export: a Reward row per converted referral that paid the
advocate, and a Redemption when the advocate spends it (which the pipeline skips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.layouts import shopify
from pipelines.sample.layouts.contract import Tables, cents, formatted, money, utc, write_csv

_TIME = "%Y-%m-%dT%H:%M:%SZ"


def write(tables: Tables, folder: Path) -> None:
    export_day = pd.Timestamp(folder.name, tz="UTC")
    write_csv(account_credits(tables, export_day), folder / "account_credit_export.csv")


def account_credits(tables: Tables, export_day: pd.Timestamp) -> pd.DataFrame:
    """Rewards in conversion order; every third one redeemed a week later (before the
    export date), so the ledger shows both kinds of row."""
    r = tables["referrals"]
    paid = r[(r["status"] == "converted") & (r["reward_referrer_amount"] != "")]
    emails = tables["customers"].set_index("customer_id")["email"]
    at = utc(paid["converted_at"])
    amount = cents(paid["reward_referrer_amount"]).to_numpy()
    rewards = pd.DataFrame(
        {
            "at": at.to_numpy(),
            "Customer Email": paid["referrer_customer_id"].map(emails).to_numpy(),
            "Customer ID": shopify.source_ids(paid["referrer_customer_id"]).to_numpy(),
            "Credit Source": "Reward",
            "Friend Email": paid["referee_email"].to_numpy(),
            "Friend Order ID": "",
            "amount": amount,
            "Currency": paid["reward_currency"].replace("", "USD").to_numpy(),
        }
    )
    redeemed = rewards.iloc[::3].copy()
    redeemed["at"] = redeemed["at"] + pd.Timedelta(days=7)
    redeemed = redeemed[redeemed["at"] < export_day]
    redeemed["Credit Source"] = "Redemption"
    redeemed["Friend Email"] = ""
    redeemed["amount"] = -redeemed["amount"]
    ledger = pd.concat([rewards, redeemed]).sort_values(["at", "Customer ID"], kind="stable")
    balance = ledger.groupby("Customer ID", sort=False)["amount"].cumsum()
    return pd.DataFrame(
        {
            "Date": formatted(ledger["at"], _TIME),
            "Customer Email": ledger["Customer Email"],
            "Customer ID": ledger["Customer ID"],
            "Credit Source": ledger["Credit Source"],
            "Friend Email": ledger["Friend Email"],
            "Friend Order ID": ledger["Friend Order ID"],
            "Details / Reason": "",
            "Issued By": "",
            "Transaction Amount": np.where(ledger["amount"] < 0, "-", "")
            + money(ledger["amount"].abs()).to_numpy(),
            "Customer Running Balance": money(balance.clip(lower=0)).to_numpy(),
            "Currency": ledger["Currency"],
        }
    )
