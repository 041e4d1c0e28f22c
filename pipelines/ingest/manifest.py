"""manifest.json: export mode, listed files and their sha256 checksums."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder


def read_manifest(folder: ExportFolder) -> dict:
    path = folder.path / "manifest.json"
    if not path.exists():
        return {"mode": "full", "files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportRefused(folder.path, "manifest.json", f"cannot be parsed ({exc})") from exc
    mode = manifest.get("mode", "full")
    if mode not in ("full", "incremental"):
        raise ExportRefused(folder.path, "manifest.json", f"unknown mode {mode!r}")
    return {"mode": mode, "files": manifest.get("files") or {}}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_manifest_checksums(folder: ExportFolder, manifest: dict) -> None:
    for name, expected in sorted(manifest["files"].items()):
        path = folder.path / name
        if not path.exists():
            raise ExportRefused(folder.path, name, "listed in manifest.json but missing")
        want = (expected or {}).get("sha256")
        if want and sha256_of(path) != want.lower():
            raise ExportRefused(
                folder.path, name, "sha256 checksum disagrees with manifest.json (corrupt export)"
            )
