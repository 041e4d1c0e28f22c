"""The public API: full exports, the next day's export and a series of daily exports."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from pipelines.sample.dates import DEFAULT_AS_OF
from pipelines.sample.layouts import convert
from pipelines.sample.next_day import advance_one_day
from pipelines.sample.population import build_population
from pipelines.sample.writer import write_export


def generate_export(
    out_dir: Path,
    customers: int,
    seed: int = 42,
    as_of: date = DEFAULT_AS_OF,
    layout: str = "contract",
) -> Path:
    """Write the full export of `customers` customers dated `as_of` to `out_dir/<as_of>`
    in `layout` (and the ground truth to `out_dir/_ground_truth/<as_of>.csv`); return the
    folder."""
    folder = write_export(build_population(customers, seed, as_of), Path(out_dir), as_of)
    convert(folder, layout)
    return folder


def generate_next_day(
    out_dir: Path,
    customers: int,
    seed: int = 42,
    as_of: date = DEFAULT_AS_OF,
    layout: str = "contract",
) -> Path:
    """Write the export of the day after `as_of`: the same population as
    `generate_export(out_dir, customers, seed, as_of)` plus one day of small changes
    (new customers, new orders, referrals converting, pending orders completing, a few
    surveys and events).  Returns `out_dir/<as_of + 1 day>`; does not write `as_of`."""
    return generate_series(out_dir, customers, seed, as_of, 2, write_first=False, layout=layout)[-1]


def generate_series(
    out_dir: Path,
    customers: int,
    seed: int = 42,
    as_of: date = DEFAULT_AS_OF,
    days: int = 1,
    write_first: bool = True,
    layout: str = "contract",
) -> list[Path]:
    """Write `days` consecutive full exports in `layout`: `as_of` (the base population),
    then one day of changes per following date.  Returns the folders written."""
    if days < 1:
        raise ValueError("days must be >= 1")
    pop = build_population(customers, seed, as_of)
    folders = [write_export(pop, Path(out_dir), as_of)] if write_first else []
    for i in range(1, days):
        day = as_of + timedelta(days=i - 1)
        advance_one_day(pop, day, i)
        folders.append(write_export(pop, Path(out_dir), day + timedelta(days=1)))
    for folder in folders:
        convert(folder, layout)
    return folders
