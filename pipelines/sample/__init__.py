"""Synthetic nightly CRM exports that follow the export contract (docs/spec/crm-exports.md).

    python -m pipelines.sample --customers 5000 --out data/exports [--seed 42]
        [--as-of 2026-11-21] [--days 1] [--layout contract|shopify|hubspot|salesforce|stripe|mixed]

writes `<out>/<as_of ISO>/` with every contract table as CSV plus `manifest.json` (written
last), and the hidden behaviour group of every customer to `<out>/_ground_truth/<as_of>.csv`
(outside the export folder, so ingest never reads it).  `--days K` writes K consecutive
full exports: the base population at `--as-of`, then one day of small changes per
following day (`--as-of` + 1, + 2, ...).

Design (details in each module's docstring):
- Deterministic (`draws`): one fixed PCG64 stream per part, no wall clock, money from
  integer cents (`writer`).  Same arguments => byte-identical files.
- Vectorised with numpy; CSV written with `pyarrow.csv` in chunks, the manifest checksum
  streamed (`writer`).
- Every timestamp is before the export date (midnight UTC); the history spans 3 years
  (`dates`).
- Customers belong to one of `BEHAVIOUR_GROUPS`, which differ strongly in behaviour
  (`params`).

Modules: `params` (behaviour groups, distributions, vocabularies), `dates`, `draws`
(random streams and draws), `records` (numpy column tables), `population` (customers and
the whole population), `orders`, `referrals`, `engagement` (surveys and events),
`next_day` (one day of changes), `writer` (CSV, ground truth, manifest), `api`
(`generate_*`), `cli` (`main`), `layouts` (the same export in vendors' layouts:
docs/sources.md, "Sample exports in each layout").
"""

from pipelines.sample.api import generate_export, generate_next_day, generate_series
from pipelines.sample.cli import main
from pipelines.sample.dates import DAY, DEFAULT_AS_OF, HISTORY_DAYS, HOUR
from pipelines.sample.params import (
    ADV,
    BEHAVIOUR_GROUPS,
    BIG,
    CURRENCIES,
    DET,
    FX_RATES,
    GROUP_SHARES,
    LAP,
    NEW,
    PRO,
    REG,
)
from pipelines.sample.writer import BASE_CURRENCY, EXPORT_TABLES, GROUND_TRUTH_DIR

__all__ = [
    "ADV",
    "BASE_CURRENCY",
    "BEHAVIOUR_GROUPS",
    "BIG",
    "CURRENCIES",
    "DAY",
    "DEFAULT_AS_OF",
    "DET",
    "EXPORT_TABLES",
    "FX_RATES",
    "GROUND_TRUTH_DIR",
    "GROUP_SHARES",
    "HISTORY_DAYS",
    "HOUR",
    "LAP",
    "NEW",
    "PRO",
    "REG",
    "generate_export",
    "generate_next_day",
    "generate_series",
    "main",
]
