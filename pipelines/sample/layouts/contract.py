"""The contract tables of a written sample export, read back so a vendor layout can be
written from them, and the helpers every vendor writer shares.

Every table is read as text ("" = blank), so a value the writer does not touch is copied
exactly; timestamps in the contract files are UTC `YYYY-MM-DD HH:MM:SS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sample.writer import EXPORT_TABLES

Tables = dict[str, pd.DataFrame]
# contract customer id -> the customer id the pipeline gives that person from a layout
CustomerIds = Callable[[pd.Series], pd.Series]

DATA_SUFFIX = ".csv"


def read_tables(folder: Path) -> Tables:
    """Every contract table of an export folder, as text."""
    return {
        table: pd.read_csv(
            folder / f"{table}{DATA_SUFFIX}", dtype=str, keep_default_na=False, na_filter=False
        )
        for table in EXPORT_TABLES
    }


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV as the vendor tools write it: a header row, `\\n` line ends, quotes only where
    a value needs them."""
    frame.to_csv(path, index=False, lineterminator="\n")


def customer_number(ids: pd.Series) -> np.ndarray:
    """`C0000123` -> 123: the sample's customers are numbered from 1."""
    return ids.str.slice(1).astype(np.int64).to_numpy()


def utc(values: pd.Series) -> pd.Series:
    """Contract timestamps (UTC, no offset) as tz-aware datetimes; blank -> NaT."""
    return pd.to_datetime(values.replace("", None), format="%Y-%m-%d %H:%M:%S", utc=True)


def formatted(values: pd.Series, fmt: str) -> pd.Series:
    """Datetimes as text in `fmt`; NaT -> ""."""
    return values.dt.strftime(fmt).fillna("")


def money(cents: pd.Series | np.ndarray) -> pd.Series:
    """Integer cents as `d.cc` text, as the contract writes money."""
    cents = pd.Series(np.asarray(cents, dtype=np.int64))
    return (cents // 100).astype(str) + "." + (cents % 100).astype(str).str.zfill(2)


def cents(values: pd.Series) -> pd.Series:
    """`d.cc` text (blank = 0) as integer cents."""
    return (pd.to_numeric(values.replace("", "0")) * 100).round().astype(np.int64)


def remap_customers(
    frame: pd.DataFrame, columns: tuple[str, ...], ids: CustomerIds
) -> pd.DataFrame:
    """The frame with its customer-id columns rewritten to the pipeline's ids of a layout
    (blank stays blank)."""
    out = frame.copy()
    for column in columns:
        present = out[column] != ""
        out.loc[present, column] = ids(out.loc[present, column]).to_numpy()
    return out


def write_manifest(folder: Path) -> None:
    """manifest.json for every data file of the folder (rows, sha256), written last and
    atomically, as the contract writer does."""
    files = {}
    for path in sorted(folder.glob(f"*{DATA_SUFFIX}")):
        data = path.read_bytes()
        files[path.name] = {
            "rows": max(0, len(pd.read_csv(path, dtype=str, na_filter=False))),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps({"mode": "full", "files": files}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / "manifest.json")
