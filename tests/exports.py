"""Write small hand-made CRM exports for tests."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path


def write_csv(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path


def write_manifest(folder: Path, mode: str = "full", overrides: dict | None = None) -> None:
    """manifest.json over every file in the folder, with optional per-file overrides."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name == "manifest.json" or not path.is_file():
            continue
        data = path.read_bytes()
        rows = max(data.count(b"\n") - 1, 0) if path.suffix == ".csv" else None
        entry = {"sha256": hashlib.sha256(data).hexdigest()}
        if rows is not None:
            entry["rows"] = rows
        files[path.name] = entry
    for name, values in (overrides or {}).items():
        files.setdefault(name, {}).update(values)
    (folder / "manifest.json").write_text(json.dumps({"mode": mode, "files": files}))
