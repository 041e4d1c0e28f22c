"""Command line: `python -m pipelines.sample --customers N --out DIR [...]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pipelines.sample.api import generate_series
from pipelines.sample.dates import DEFAULT_AS_OF
from pipelines.sample.layouts import LAYOUT_NAMES


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sample",
        description="Write synthetic nightly CRM exports (see docs/spec/crm-exports.md).",
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("data/exports"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=DEFAULT_AS_OF,
        help="date of the first export (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--days", type=int, default=1, help="consecutive daily exports to write, from --as-of on"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUT_NAMES,
        default="contract",
        help="write the files as these systems export them (docs/sources.md)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    folders = generate_series(
        args.out, args.customers, args.seed, args.as_of, args.days, layout=args.layout
    )
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        rows = ", ".join(f"{name}={entry['rows']}" for name, entry in manifest["files"].items())
        print(f"{folder}: {rows}")
    print(f"done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0
