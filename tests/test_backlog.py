"""Which exports a night ingests when some are refused (pipelines/ingest/backlog.py).

The ingest step itself is replaced by a function that refuses the dates it is told to, so
each case states exactly which exports were tried, in which order, and what came of them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pipelines.ingest import ExportFolder, ExportRefused
from pipelines.ingest.backlog import Skip, ingest_backlog
from tests.exports import write_csv, write_manifest


def folders(tmp_path: Path, modes: dict[str, str]) -> list[ExportFolder]:
    out = []
    for day, mode in sorted(modes.items()):
        path = tmp_path / day
        write_csv(path, "customers.csv", ["customer_id"], [["C1"]])
        write_manifest(path, mode)
        out.append(ExportFolder(date.fromisoformat(day), path))
    return out


class FakeIngest:
    """Refuses the given dates; records every attempt."""

    def __init__(self, refuse: set[str]):
        self.refuse, self.tried = refuse, []

    def __call__(self, folder: ExportFolder) -> str:
        day = folder.export_date.isoformat()
        self.tried.append(day)
        if day in self.refuse:
            raise ExportRefused(folder.path, "orders.csv", f"bad rows on {day}")
        return day


def test_refused_full_export_is_superseded_by_the_next_good_full_one(tmp_path):
    exports = folders(tmp_path, {"2026-11-02": "full", "2026-11-03": "full"})
    ingest = FakeIngest({"2026-11-02"})
    backlog = ingest_backlog(exports, ingest)
    assert ingest.tried == ["2026-11-02", "2026-11-03"]
    assert backlog.ingested == ["2026-11-03"]
    assert backlog.blocking is None
    [(refusal, by)] = backlog.superseded
    assert (refusal.export_date, refusal.file, refusal.reason, by) == (
        date(2026, 11, 2),
        "orders.csv",
        "bad rows on 2026-11-02",
        date(2026, 11, 3),
    )
    [warning] = backlog.warnings()
    assert "2026-11-02" in warning and "bad rows on 2026-11-02" in warning
    assert "superseded by the full export 2026-11-03" in warning


def test_refused_incremental_export_blocks_later_incremental_ones(tmp_path):
    exports = folders(
        tmp_path,
        {"2026-11-02": "incremental", "2026-11-03": "incremental", "2026-11-04": "incremental"},
    )
    ingest = FakeIngest({"2026-11-02"})
    backlog = ingest_backlog(exports, ingest)
    assert ingest.tried == ["2026-11-02"]  # 3 and 4 are not even tried
    assert backlog.ingested == []
    assert backlog.blocking.export_date == date(2026, 11, 2)
    assert [f.export_date.isoformat() for f in backlog.waiting] == ["2026-11-03", "2026-11-04"]
    message = backlog.blocked_message()
    assert message.startswith(
        f"Export {tmp_path / '2026-11-02'} refused: orders.csv: bad rows on 2026-11-02 "
        "(incremental export). It blocks every later incremental export"
    )
    assert "blocked since 2026-11-02, 2 export(s) waiting behind it (2026-11-03, 2026-11-04)" in (
        message
    )
    assert "--skip-export 2026-11-02" in message


def test_refused_full_export_also_blocks_later_incremental_ones(tmp_path):
    exports = folders(tmp_path, {"2026-11-02": "full", "2026-11-03": "incremental"})
    backlog = ingest_backlog(exports, FakeIngest({"2026-11-02"}))
    assert backlog.ingested == []
    assert backlog.blocking.export_date == date(2026, 11, 2)
    assert [f.export_date for f in backlog.waiting] == [date(2026, 11, 3)]


def test_good_full_export_clears_the_block_and_the_held_back_ones_go_in_after_it(tmp_path):
    exports = folders(
        tmp_path,
        {
            "2026-11-02": "incremental",
            "2026-11-03": "incremental",
            "2026-11-04": "full",
            "2026-11-05": "incremental",
        },
    )
    ingest = FakeIngest({"2026-11-02"})
    backlog = ingest_backlog(exports, ingest)
    # 3 waits behind 2; the full 4 clears the block, then 3 goes in late, then 5.
    assert ingest.tried == ["2026-11-02", "2026-11-04", "2026-11-03", "2026-11-05"]
    assert backlog.ingested == ["2026-11-04", "2026-11-03", "2026-11-05"]
    assert [(r.export_date, by) for r, by in backlog.superseded] == [
        (date(2026, 11, 2), date(2026, 11, 4))
    ]
    assert backlog.blocking is None and backlog.waiting == []


def test_held_back_export_refused_after_the_block_clears_is_superseded_too(tmp_path):
    exports = folders(
        tmp_path, {"2026-11-02": "incremental", "2026-11-03": "incremental", "2026-11-04": "full"}
    )
    backlog = ingest_backlog(exports, FakeIngest({"2026-11-02", "2026-11-03"}))
    assert backlog.ingested == ["2026-11-04"]
    assert [(r.export_date.day, by.day) for r, by in backlog.superseded] == [(2, 4), (3, 4)]


def test_explicit_skip_lets_the_later_exports_through(tmp_path):
    exports = folders(tmp_path, {"2026-11-02": "incremental", "2026-11-03": "incremental"})
    skip = Skip(date(2026, 11, 2), by="ops@example (ticket 42)", note="vendor lost the file")
    backlog = ingest_backlog(exports, FakeIngest({"2026-11-02"}), skips=[skip])
    assert backlog.ingested == ["2026-11-03"]
    assert backlog.blocking is None
    [(refusal, recorded)] = backlog.skipped
    assert refusal.export_date == date(2026, 11, 2) and recorded is skip
    assert "skipped by ops@example (ticket 42) (vendor lost the file)" in backlog.warnings()[0]


def test_skip_of_a_good_export_changes_nothing(tmp_path):
    exports = folders(tmp_path, {"2026-11-02": "incremental"})
    backlog = ingest_backlog(exports, FakeIngest(set()), skips=[Skip(date(2026, 11, 2), "ops")])
    assert backlog.ingested == ["2026-11-02"] and backlog.skipped == []


def test_newest_full_export_refused_blocks(tmp_path):
    exports = folders(tmp_path, {"2026-11-02": "full", "2026-11-03": "full"})
    backlog = ingest_backlog(exports, FakeIngest({"2026-11-03"}))
    assert backlog.ingested == ["2026-11-02"]
    assert backlog.blocking.export_date == date(2026, 11, 3) and backlog.waiting == []
