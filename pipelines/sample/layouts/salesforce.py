"""Salesforce exports with API field names as headers, Data Loader style (every value
double-quoted, dates `yyyy-MM-dd`, date-times `yyyy-MM-ddTHH:mm:ss.SSS+0000` in UTC):
`Contact.csv` and `Opportunity.csv`.

A customer is a contact on an account of its own; an order is an opportunity: completed is
Closed Won, pending an open stage, cancelled and refunded Closed Lost (the pipeline counts
won opportunities only).  A few contacts have a duplicate that was merged into them
(Export All keeps the merged record, deleted, with MasterRecordId): the pipeline skips it,
so every sample customer is still one customer.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.layouts.contract import Tables, customer_number, formatted, utc

_DATETIME = "%Y-%m-%dT%H:%M:%S.000+0000"
_DATE = "%Y-%m-%d"
# Ids: key prefix, the org's instance (pod) code, a reserved 0, then a 9-character base62
# record number; sequential with gaps, as one org's records are.
_POD = "8d"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_RECORD_STEP = 7_919
# first record number of each object's sequence (contacts, accounts, opportunities; merged
# duplicates were created later: higher numbers)
_CONTACT_BASE = 3 * 62**5
_ACCOUNT_BASE = 2 * 62**5 + 1_234_567
_OPPORTUNITY_BASE = 5 * 62**5 + 7_654_321
_DUPLICATE_BASE = _CONTACT_BASE + 62**7
# every contact whose number is a multiple of this has a merged duplicate
_MERGED_EVERY = 25
# every opportunity whose number is a multiple of this hangs on the account only
_ACCOUNT_ONLY_EVERY = 6

# contract acquisition channel -> LeadSource that the adapter's `lead_source` map gives back
LEAD_SOURCE = {
    "organic": "Web",
    "paid_search": "Paid Search",
    "paid_social": "Paid Social",
    "social": "Social Media",
    "email": "Email",
    "referral": "Customer Referral",
    "partner": "Partner Referral",
    "affiliate": "Affiliate",
    "other": "Other",
    "": "",
}
# contract order status -> (StageName, IsClosed, IsWon, Probability, ForecastCategoryName)
_STAGE = {
    "completed": ("Closed Won", "true", "true", "100", "Closed"),
    "refunded": ("Closed Lost", "true", "false", "0", "Omitted"),
    "cancelled": ("Closed Lost", "true", "false", "0", "Omitted"),
    "pending": ("Negotiation/Review", "false", "false", "90", "Commit"),
}


def _record_numbers(numbers: np.ndarray, base: int) -> np.ndarray:
    """Increasing record numbers with uneven gaps (other records created in between)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    return base + numbers * _RECORD_STEP + (numbers * 40_503 + base) % 3_001


def salesforce_ids(key_prefix: str, records: np.ndarray) -> np.ndarray:
    """18-character ids: the 15-character case-sensitive id plus Salesforce's case-safe
    suffix (per five characters, the bits of their upper-case letters index A-Z0-5)."""
    records = np.asarray(records, dtype=np.int64)
    digits = np.empty((len(records), 9), dtype=np.int64)
    rest = records.copy()
    for position in range(8, -1, -1):
        digits[:, position] = rest % 62
        rest //= 62
    if (rest != 0).any():
        raise ValueError("record number too large for a Salesforce id")
    head = np.array(list(key_prefix + _POD + "0"), dtype="<U1")
    chars = np.concatenate(
        [np.broadcast_to(head, (len(records), 6)), np.array(list(_BASE62), dtype="<U1")[digits]],
        axis=1,
    )
    upper = ((chars >= "A") & (chars <= "Z")).reshape(len(records), 3, 5)
    suffix = np.array(list(_SUFFIX), dtype="<U1")[upper @ (1 << np.arange(5))]
    full = np.ascontiguousarray(np.concatenate([chars, suffix], axis=1))
    return full.view("<U18").ravel()


def source_ids(contract_ids: pd.Series) -> pd.Series:
    """The 18-character Contact Id of a sample customer."""
    records = _record_numbers(customer_number(contract_ids), _CONTACT_BASE)
    return pd.Series(salesforce_ids("003", records), index=contract_ids.index)


def customer_ids(contract_ids: pd.Series) -> pd.Series:
    """The pipeline's id of a customer first seen in Salesforce's contacts."""
    return "salesforce:" + source_ids(contract_ids)


def _account_ids(contract_ids: pd.Series) -> np.ndarray:
    """One account per contact (a person account, as a shop's CRM has them)."""
    return salesforce_ids("001", _record_numbers(customer_number(contract_ids), _ACCOUNT_BASE))


def write(tables: Tables, folder: Path) -> None:
    """`Contact.csv` (the merged duplicates after the live contacts) and `Opportunity.csv`
    in `folder`: the files an Export All of the two objects gives."""
    contacts = contact_records(tables)
    _write_quoted(
        pd.concat([contacts, merged_duplicates(tables, contacts, folder.name)], ignore_index=True),
        folder / "Contact.csv",
    )
    _write_quoted(opportunity_records(tables, contacts), folder / "Opportunity.csv")


def _write_quoted(frame: pd.DataFrame, path: Path) -> None:
    """As Data Loader writes: header and every value double-quoted, `\\n` line ends."""
    frame.to_csv(path, index=False, lineterminator="\n", quoting=csv.QUOTE_ALL)


def _created(tables: Tables) -> pd.Series:
    """Each contact's CreatedDate: the signup day at a time of day drawn from the number,
    never after the customer's first order or last change (those came later)."""
    c = tables["customers"]
    o = tables["orders"]
    number = customer_number(c["customer_id"])
    day = pd.to_datetime(c["signup_date"], format=_DATE).dt.tz_localize("UTC")
    drawn = (
        day
        + pd.to_timedelta(8 + number % 12, unit="h")
        + pd.to_timedelta(number % 60, unit="m")
        + pd.to_timedelta(number * 7 % 60, unit="s")
    )
    first_order = utc(o["order_date"]).groupby(o["customer_id"].to_numpy()).min()
    latest = pd.concat([c["customer_id"].map(first_order), utc(c["updated_at"])], axis=1).min(
        axis=1
    )
    capped = drawn.where(~(drawn > latest), latest)  # no order and no change: as drawn
    return capped.where(capped >= day, day)


def contact_records(tables: Tables) -> pd.DataFrame:
    """One Contact per sample customer (the contract's order)."""
    c = tables["customers"]
    number = customer_number(c["customer_id"])
    birthdate = (
        c["birth_year"]
        + "-"
        + pd.Series(1 + number * 7 % 12, index=c.index).astype(str).str.zfill(2)
        + "-"
        + pd.Series(1 + number * 11 % 28, index=c.index).astype(str).str.zfill(2)
    ).where(c["birth_year"] != "", "")
    return pd.DataFrame(
        {
            "Id": source_ids(c["customer_id"]),
            "IsDeleted": "false",
            "MasterRecordId": "",
            "AccountId": _account_ids(c["customer_id"]),
            "FirstName": c["first_name"],
            "LastName": c["last_name"],
            "MailingCity": c["city"],
            "MailingCountryCode": c["country"],
            "Phone": c["phone"],
            "MobilePhone": "",
            "Email": c["email"],
            "Birthdate": birthdate,
            "LeadSource": c["acquisition_channel"].map(LEAD_SOURCE).fillna("Other"),
            # the field says the opposite of the contract's opt-in
            "HasOptedOutOfEmail": c["marketing_opt_in"].map({"true": "false", "false": "true"}),
            "CreatedDate": formatted(_created(tables), _DATETIME),
            "LastModifiedDate": formatted(utc(c["updated_at"]), _DATETIME),
        }
    )


def merged_duplicates(tables: Tables, contacts: pd.DataFrame, export_date: str) -> pd.DataFrame:
    """A duplicate of every `_MERGED_EVERY`th contact, created 1-20 days after it and merged
    into it 3 hours later: the deleted record Export All writes, IsDeleted true and
    MasterRecordId the survivor.  Created after the survivor, so the survivor's signup day
    stands; a merge not done by the export date is not in it (the same record every day)."""
    number = customer_number(tables["customers"]["customer_id"])
    survivor_created = pd.to_datetime(contacts["CreatedDate"], format=_DATETIME, utc=True)
    created = survivor_created + pd.to_timedelta(1 + number % 20, unit="D")
    merged_at = created + pd.Timedelta(hours=3)
    pick = (number % _MERGED_EVERY == 0) & (merged_at < pd.Timestamp(export_date, tz="UTC"))
    dup = contacts[pick].copy()
    dup["Id"] = salesforce_ids("003", _record_numbers(number[pick], _DUPLICATE_BASE))
    dup["IsDeleted"] = "true"
    dup["MasterRecordId"] = contacts.loc[pick, "Id"]
    dup["Email"] = dup["Email"].str.upper()  # typed again by hand
    dup["Birthdate"] = ""
    dup["CreatedDate"] = formatted(created[pick], _DATETIME)
    dup["LastModifiedDate"] = formatted(merged_at[pick], _DATETIME)
    return dup


def opportunity_records(tables: Tables, contacts: pd.DataFrame) -> pd.DataFrame:
    """One Opportunity per contract order.  A won one closes on the order's day; a lost one
    on the day it was cancelled or refunded (its last change); an open one is expected to
    close 30 days after the order."""
    o = tables["orders"]
    by_customer = contacts.set_index(tables["customers"]["customer_id"].to_numpy())
    number = o["order_id"].str.slice(1).astype(np.int64).to_numpy()
    ordered = utc(o["order_date"])
    updated = utc(o["updated_at"])
    stage = o["status"].map(_STAGE)
    contact_created = pd.to_datetime(
        o["customer_id"].map(by_customer["CreatedDate"]), format=_DATETIME, utc=True
    )
    created = (
        ordered - pd.to_timedelta(number % 72, unit="h") - pd.to_timedelta(number % 60, unit="m")
    )
    created = created.where(created >= contact_created, contact_created)
    close = ordered.where(o["status"] == "completed", updated)
    close = close.where(o["status"] != "pending", ordered + pd.Timedelta(days=30))
    first = ~o["customer_id"].duplicated()
    contact_id = o["customer_id"].map(by_customer["Id"])
    return pd.DataFrame(
        {
            "Id": salesforce_ids("006", _record_numbers(number, _OPPORTUNITY_BASE)),
            "IsDeleted": "false",
            "AccountId": o["customer_id"].map(by_customer["AccountId"]),
            "ContactId": contact_id.where(number % _ACCOUNT_ONLY_EVERY != 0, ""),
            "Name": "Order "
            + o["order_id"].str.slice(1).str.lstrip("0")
            + " - "
            + o["product_category"].str.title(),
            "StageName": stage.str[0],
            "Amount": o["amount"],
            "CurrencyIsoCode": o["currency"],
            "Probability": stage.str[3],
            "CloseDate": formatted(close, _DATE),
            "Type": np.where(first, "New Customer", "Existing Customer - Upgrade"),
            "LeadSource": o["customer_id"].map(by_customer["LeadSource"]),
            "IsClosed": stage.str[1],
            "IsWon": stage.str[2],
            "ForecastCategoryName": stage.str[4],
            "CreatedDate": formatted(created, _DATETIME),
            "LastModifiedDate": formatted(updated, _DATETIME),
        }
    )
