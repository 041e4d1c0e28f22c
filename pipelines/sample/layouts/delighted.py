"""Delighted's survey responses download: one row per answer, NPS and CSAT as separate
responses (a contract row with both scores is two answers at the same time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.layouts.contract import Tables, utc, write_csv

_COMMENTS = ("", "", "Fast delivery", "Great support", "Could be cheaper", "")


def write(tables: Tables, folder: Path) -> None:
    write_csv(responses(tables), folder / "delighted-responses.csv")


def responses(tables: Tables) -> pd.DataFrame:
    """Response ID = 2 x the survey number (+1 for the CSAT answer); every 5th respondent's
    email is written with blanks around it and every 7th in upper case, as people type."""
    s = tables["surveys"]
    people = tables["customers"].set_index("customer_id")
    number = s["response_id"].str.slice(1).astype(np.int64)
    email = s["customer_id"].map(people["email"])
    email = email.where(number % 5 != 0, " " + email + " ")
    email = email.where(number % 7 != 0, email.str.upper())
    base = pd.DataFrame(
        {
            "number": number,
            "Email": email,
            "Name": s["customer_id"].map(people["first_name"] + " " + people["last_name"]),
            "Created At": (
                (utc(s["responded_at"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
            ).astype(str),
        }
    )
    parts = []
    for kind, column, offset in (("nps", "nps", 0), ("csat", "csat", 1)):
        answered = s[column] != ""
        part = base[answered.to_numpy()].copy()
        part["Response ID"] = (2 * part["number"] + offset).astype(str)
        part["Survey Type"] = kind
        part["Score"] = s.loc[answered, column].to_numpy()
        parts.append(part)
    out = pd.concat(parts).sort_values(["number", "Response ID"], kind="stable")
    out["Comment"] = [_COMMENTS[n % len(_COMMENTS)] for n in out["number"]]
    out["Permalink"] = "https://delighted.com/r/sample" + out["Response ID"]
    return out[
        [
            "Response ID",
            "Email",
            "Name",
            "Survey Type",
            "Score",
            "Comment",
            "Created At",
            "Permalink",
        ]
    ].reset_index(drop=True)
