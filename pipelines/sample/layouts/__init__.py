"""The sample export in the layouts that vendors' export screens write.

    python -m pipelines.sample --layout shopify|hubspot|salesforce|stripe|mixed

A layout is written from the contract export of the same population: the contract files
of the tables a system fills are replaced by that system's files, as downloaded
(`<system>.py`: vendor headers, date formats, line items, ids); the other contract files
stay, their customer ids rewritten to the ids the pipeline gives those people (documented
in docs/sources.md, "Identity": `<system>:<source id>`).  `mixed` is a shop on Shopify
with its contacts in HubSpot, referrals in Mention Me, rewards in Friendbuy and NPS in
Delighted (`mixed.py`), reduced first to what those files can carry (`mixed.reduce`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.sample.layouts import hubspot, mixed, salesforce, shopify, stripe
from pipelines.sample.layouts.contract import (
    CustomerIds,
    Tables,
    read_tables,
    remap_customers,
    write_csv,
    write_manifest,
)
from pipelines.sample.writer import GROUND_TRUTH_DIR


def _unchanged(tables: Tables) -> Tables:
    return tables


@dataclass(frozen=True)
class Layout:
    """How one layout is written: `write` puts the vendor files of `fills` in the folder;
    `customer_ids` names every customer as the pipeline will."""

    write: Callable[[Tables, Path], None]
    fills: tuple[str, ...]
    customer_ids: CustomerIds
    reduce: Callable[[Tables], Tables] = field(default=_unchanged)


LAYOUTS: dict[str, Layout] = {
    "shopify": Layout(shopify.write, ("customers", "orders"), shopify.customer_ids),
    "hubspot": Layout(hubspot.write, ("customers", "orders"), hubspot.customer_ids),
    "salesforce": Layout(salesforce.write, ("customers", "orders"), salesforce.customer_ids),
    "stripe": Layout(stripe.write, ("customers", "orders"), stripe.customer_ids),
    "mixed": Layout(mixed.write, mixed.FILLS, shopify.customer_ids, mixed.reduce),
}
LAYOUT_NAMES = ("contract", *LAYOUTS)


def convert(folder: Path, layout: str) -> None:
    """Rewrite the contract export in `folder` (and its ground truth) in `layout`."""
    if layout == "contract":
        return
    spec = LAYOUTS[layout]
    tables = spec.reduce(read_tables(folder))
    for table in spec.fills:
        (folder / f"{table}.csv").unlink()
    spec.write(tables, folder)
    for table, frame in tables.items():
        if table in spec.fills:
            continue
        refs = tuple(c for c in frame.columns if c.endswith("customer_id"))
        write_csv(remap_customers(frame, refs, spec.customer_ids), folder / f"{table}.csv")
    write_manifest(folder)
    _remap_ground_truth(folder, spec.customer_ids)


def write_reduced_contract(folder: Path, layout: str, out: Path) -> Path:
    """The contract export in `folder` reduced to what `layout` carries, written as a
    contract export to `out/<same date>`: the same data as `convert(folder, layout)` in
    the pipeline's own layout (with the contract's customer ids)."""
    target = out / folder.name
    target.mkdir(parents=True, exist_ok=True)
    for table, frame in LAYOUTS[layout].reduce(read_tables(folder)).items():
        write_csv(frame, target / f"{table}.csv")
    write_manifest(target)
    truth = folder.parent / GROUND_TRUTH_DIR / f"{folder.name}.csv"
    (out / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(truth, out / GROUND_TRUTH_DIR / truth.name)
    return target


def _remap_ground_truth(folder: Path, ids: CustomerIds) -> None:
    path = folder.parent / GROUND_TRUTH_DIR / f"{folder.name}.csv"
    truth = pd.read_csv(path, dtype=str, na_filter=False)
    write_csv(remap_customers(truth, ("customer_id",), ids), path)
