"""The refusal of a whole export."""

from __future__ import annotations

from pathlib import Path


class ExportRefused(Exception):
    """A whole export is unusable; the message names folder, file and reason."""

    def __init__(self, folder: Path, file: str, reason: str):
        self.folder, self.file, self.reason = folder, file, reason
        super().__init__(f"Export {folder} refused: {file}: {reason}")
