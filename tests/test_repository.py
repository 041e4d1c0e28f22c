"""The repository stands alone: nothing it tracks points outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in two parts so this file does not match itself.
OUTSIDE = "shared" + "/"


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repository():
    hits = []
    for path in tracked_files():
        if not path.is_file() or path.suffix in {".gz", ".parquet"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [
            f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for n, line in enumerate(text.splitlines(), 1)
            if OUTSIDE in line
        ]
    assert not hits, "references outside the repository:\n" + "\n".join(hits)


def test_specs_and_real_data_ship_with_the_repository():
    for name in ("crm-exports.md", "metrics.md", "design.md"):
        assert (ROOT / "docs" / "spec" / name).stat().st_size > 1000
    retail = ROOT / "datasets" / "online_retail"
    assert (retail / "online_retail.csv.gz").stat().st_size == 7_609_504
    assert "CC0" in (retail / "README.md").read_text()
