"""The two stores: the pipeline's private store (raw with personal data) and the analysts'
warehouse (marts and audit counts only), on the hand fixture."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.publish import AUDIT_TABLES
from pipelines.resources import store_path_for
from tests.pipeline_runner import MART_TABLES, copy_night, failure_messages, run_job, table_bytes

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "hand_export"


def _personal_values(exports: Path) -> set[str]:
    """Every email, name and phone of the export, normalised as a scan compares them."""
    values = set()
    for folder in exports.iterdir():
        with open(folder / "customers.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for column in ("email", "first_name", "last_name", "phone"):
                    if row.get(column, "").strip():
                        values.add(row[column].strip().lower())
        with open(folder / "referrals.csv", newline="", encoding="utf-8") as fh:
            values |= {
                r["referee_email"].strip().lower()
                for r in csv.DictReader(fh)
                if r.get("referee_email", "").strip()
            }
    return values


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    shutil.copytree(FIXTURE, root / "exports")
    # one order with an unparseable amount: the quarantine has a row (with its raw row)
    with open(root / "exports" / "2026-11-21" / "orders.csv", "a", encoding="utf-8") as fh:
        fh.write("O-BAD,001,2026-01-05,twelve,completed,0\n")
    warehouse = root / "warehouse.duckdb"
    result = run_job(root / "exports", warehouse)
    assert result.success, failure_messages(result)
    return {
        "exports": root / "exports",
        "warehouse": warehouse,
        "store": store_path_for(warehouse, ""),
    }


def _tables(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()


def test_the_analysts_warehouse_holds_the_marts_and_audit_counts_only(night):
    tables = _tables(night["warehouse"])
    assert {s for s, _ in tables} == {"marts", "audit"}
    assert {t for s, t in tables if s == "marts"} == set(MART_TABLES)
    assert {t for s, t in tables if s == "audit"} == set(AUDIT_TABLES)
    # the store keeps what the pipeline needs, raw included
    store = {f"{s}.{t}" for s, t in _tables(night["store"])}
    assert {"raw.customers", "raw.quarantine", "staging.stg_customers"} <= store


def test_no_email_name_or_phone_in_any_column_of_the_analysts_warehouse(night):
    personal = _personal_values(night["exports"])
    assert "ann@example.com" in personal and "lee" in personal and "+1 555 0101" in personal
    con = duckdb.connect(str(night["warehouse"]), read_only=True)
    try:
        found = []
        for schema, table in _tables(night["warehouse"]):
            for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                cells = {str(v).strip().lower() for v in row if v is not None}
                found += [(schema, table, v) for v in personal & cells]
                found += [(schema, table, c) for c in cells if "@example" in c]
        # and the store does hold them, so the scan can find what it looks for
        (emails,) = (
            duckdb.connect(str(night["store"]), read_only=True)
            .execute("SELECT count(*) FROM raw.customers WHERE email ILIKE '%@example.com%'")
            .fetchone()
        )
    finally:
        con.close()
    assert found == []
    assert emails > 0


def test_the_store_is_readable_by_its_owner_only(night):
    folder = night["store"].parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


def test_audit_counts_match_the_store(night):
    con = duckdb.connect(str(night["warehouse"]), read_only=True)
    try:
        audit = con.execute(
            "SELECT export_date, sum(rows) FROM audit.quarantine_summary GROUP BY 1 ORDER BY 1"
        ).fetchall()
        exports = con.execute("SELECT export_date, mode FROM audit.exports").fetchall()
    finally:
        con.close()
    store = duckdb.connect(str(night["store"]), read_only=True)
    try:
        assert (
            audit
            == store.execute(
                "SELECT export_date, count(*) FROM raw.quarantine GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        assert exports == store.execute("SELECT export_date, mode FROM raw.exports").fetchall()
    finally:
        store.close()
    assert len(exports) == 1 and audit[0][1] == 1


def test_a_warehouse_of_the_older_layout_becomes_the_store(night, tmp_path):
    """Before the split, raw lived in the analysts' file: the next run takes that file as
    its store and publishes marts only."""
    old = tmp_path / "warehouse.duckdb"
    shutil.copyfile(night["store"], old)  # the old layout: everything in one file
    result = run_job(night["exports"], old)
    assert result.success, failure_messages(result)
    assert {s for s, _ in _tables(old)} == {"marts", "audit"}
    store = store_path_for(old, "")
    con = duckdb.connect(str(store), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw.exports").fetchone()[0] == 1
    finally:
        con.close()


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    """The pipeline's files under `folder` that hold `needle` (the CRM's own export files
    under exports/ are its input, not the pipeline's)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] != "exports" and needle in p.read_bytes()
    )


def test_erasure_leaves_no_byte_of_the_person_in_any_file(hand_night, tmp_path):
    """Night 1 stores Dan (dan@example.com) in raw; night 2 asks to erase him. Afterwards
    no file of the run (store, analysts' warehouse, report) holds his email or phone."""
    warehouse = copy_night(hand_night, tmp_path)  # night 1, run once per session
    exports = tmp_path / "exports"
    email, phone = b"dan@example.com", b"+1 555 0104"
    store = store_path_for(warehouse, "")
    assert _files_holding(tmp_path, email) == [f"pipeline/{store.name}"]  # the scan sees it
    night2 = exports / "2026-11-22"
    shutil.copytree(exports / "2026-11-21", night2)
    (night2 / "erasure_requests.csv").write_text("email\nDan@Example.com\n", encoding="utf-8")
    result = run_job(exports, warehouse)
    assert result.success, failure_messages(result)
    published = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["warehouse", "published"]
    )
    meta = published.step_materialization_data.materialization.metadata
    assert "erasure" in meta["store_compacted"].value
    for needle in (email, phone):
        assert _files_holding(tmp_path, needle) == [], needle
    con = duckdb.connect(str(store), read_only=True)
    try:
        assert con.execute(
            "SELECT count(*) FROM raw.customers WHERE customer_id = '004'"
        ).fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM raw.maintenance_requests").fetchone() == (0,)
    finally:
        con.close()


_DYING_RUN = """
import os, signal, sys
from pathlib import Path
import pipelines.resources as resources
from tests.pipeline_runner import run_job

exports, warehouse, when = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real = resources._replace_durably

def dying(source, target):
    if target == warehouse and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(source, target)
    if target == warehouse and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)

resources._replace_durably = dying
run_job(exports, warehouse)
"""


@pytest.mark.parametrize(
    ("when", "analysts_see"),
    [("before", "night 1"), ("after", "night 2")],
    ids=["before-the-analysts-file-rename", "right-after-it"],
)
def test_kill_9_during_publish_then_the_next_night_is_green(
    hand_night, tmp_path, when, analysts_see
):
    """A run SIGKILLed inside `publish` (another process, killed just before or just after
    the analysts' file is renamed into place) leaves that file whole: the old night, or the
    new one complete.  The store holds night 2 either way (its ingest had committed); the
    next run is green and publishes night 2."""
    warehouse = copy_night(hand_night, tmp_path)  # night 1, run once per session
    exports = tmp_path / "exports"
    store = store_path_for(warehouse, "")
    night2 = exports / "2026-11-22"
    shutil.copytree(exports / "2026-11-21", night2)
    with open(night2 / "orders.csv", "a", encoding="utf-8") as fh:
        fh.write("O777,006,2026-11-21,40.00,completed,0\n")
    marts_before = {t: table_bytes(warehouse, f"marts.{t}") for t in MART_TABLES}
    # a whole run in another process that SIGKILLs itself at the rename
    child = subprocess.run(
        [sys.executable, "-c", _DYING_RUN, str(exports), str(warehouse), when],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert _as_of(store, "raw.exports") == "2026-11-22"
    marts_now = {t: table_bytes(warehouse, f"marts.{t}") for t in MART_TABLES}
    assert (marts_now == marts_before) == (analysts_see == "night 1")
    assert _as_of(warehouse, "audit.exports") == (
        "2026-11-21" if when == "before" else "2026-11-22"
    )
    again = run_job(exports, warehouse)
    assert again.success, failure_messages(again)
    assert _as_of(warehouse, "audit.exports") == "2026-11-22"
    frequency = duckdb.connect(str(warehouse), read_only=True).execute(
        "SELECT frequency FROM marts.customer_features WHERE customer_id = '006'"
    )
    assert frequency.fetchone() == (1,)  # 006's second purchase day (O777) counted


def _as_of(path: Path, table: str) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return str(con.execute(f"SELECT max(export_date) FROM {table}").fetchone()[0])
    finally:
        con.close()
