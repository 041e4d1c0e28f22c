"""Guard rails: refused exports, killed runs, concurrent runs, privacy and erasure.

Every scenario starts from a warehouse published from the hand fixture and checks that the
published file (and so every mart) is byte-for-byte what it was whenever a run does not
complete.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.dbt import DBT_LAUNCHER
from pipelines.dbt_child import dies_with_parent, split_parent
from tests.exports import write_csv, write_manifest
from tests.pipeline_runner import (
    MART_TABLES,
    copy_night,
    failure_messages,
    run_job,
    store_of,
    table_bytes,
)
from tests.source_runs import run_with_logs

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "hand_export"
NEXT_DAY = "2026-11-22"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def setup(hand_night, tmp_path):
    """(exports dir, warehouse path, next-day export folder) in a fresh copy of the
    warehouse published once from the hand fixture (`hand_night`, tests/conftest.py)."""
    wh = copy_night(hand_night, tmp_path)
    nxt = tmp_path / "exports" / NEXT_DAY
    shutil.copytree(FIXTURE / "2026-11-21", nxt)
    return tmp_path / "exports", wh, nxt


def rewrite(path: Path, transform) -> None:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    rows = transform(rows)
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def drop_column(name: str):
    def transform(rows):
        i = rows[0].index(name)
        return [r[:i] + r[i + 1 :] for r in rows]

    return transform


def break_customer_refs(rows):
    # 12 of 20 orders point to an unknown customer: 60% bad rows > 5%
    return [rows[0]] + [r[:1] + ["999"] + r[2:] if i < 12 else r for i, r in enumerate(rows[1:])]


REFUSALS = {
    "missing_file": (
        lambda d: (d / "referrals.csv").unlink(),
        "referrals.csv: required file missing",
    ),
    "missing_column": (
        lambda d: rewrite(d / "orders.csv", drop_column("order_date")),
        "orders.csv: required column(s) missing: order_date",
    ),
    "unparseable_file": (
        lambda d: (d / "surveys.csv").write_text('response_id,nps\n"S1,9\n'),
        "surveys.csv: cannot be parsed",
    ),
    "manifest_rows": (
        lambda d: write_manifest(d, overrides={"orders.csv": {"rows": 25}}),
        "orders.csv: 20 rows read but manifest.json says 25 (truncated export)",
    ),
    "manifest_checksum": (
        lambda d: (write_manifest(d), rewrite(d / "events.csv", lambda r: r[:-1])),
        "events.csv: sha256 checksum disagrees with manifest.json",
    ),
    "bad_row_share": (
        lambda d: rewrite(d / "orders.csv", break_customer_refs),
        "orders.csv: 12 of 20 rows are bad (60.0% > 5% threshold); "
        "most common: unknown customer in column customer_id",
    ),
    "currency_without_rate": (
        lambda d: rewrite(
            d / "orders.csv", lambda r: [r[0] + ["currency"]] + [x + ["JPY"] for x in r[1:]]
        ),
        "no exchange rate for currency JPY",
    ),
}


@pytest.mark.parametrize("rule", sorted(REFUSALS))
def test_refused_export_names_the_file_and_publishes_nothing(setup, rule):
    exports, wh, nxt = setup
    damage, fragment = REFUSALS[rule]
    damage(nxt)
    before = sha256(wh), sha256(store_of(wh))
    result = run_job(exports, wh)
    assert not result.success
    messages = " ".join(failure_messages(result))
    assert f"Export {nxt} refused:" in messages
    assert fragment in messages
    # every mart byte-for-byte as it was, and the store too (the refused ingest and its
    # re-check for the failure's detail are rolled back whole)
    assert (sha256(wh), sha256(store_of(wh))) == before


def test_quarantined_rows_are_published_with_the_run(setup):
    exports, wh, nxt = setup
    rewrite(nxt / "orders.csv", lambda r: r + [["O999", "001", "2026-11-01", "-5", "", ""]])
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    con = duckdb.connect(str(store_of(wh)), read_only=True)
    try:
        rows = con.execute(
            "SELECT export_date::VARCHAR, file, line_number, column_name, value, reason "
            "FROM raw.quarantine"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(NEXT_DAY, "orders.csv", 22, "amount", "-5", "out of range (must be >= 0)")]
    ingest_meta = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["raw", "orders"]
    ][0]
    metadata = ingest_meta.step_materialization_data.materialization.metadata
    assert metadata["rows_quarantined_this_run"].value == 1
    published = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["warehouse", "published"]
    ][0]
    pmeta = published.step_materialization_data.materialization.metadata
    # R001 (id) and R007 (normalised email) are self-referrals; R004 a duplicate conversion
    assert pmeta["self_referrals_excluded"].value == 2
    assert pmeta["duplicate_conversions_excluded"].value == 1


def _start(exports: Path, wh: Path, home: Path, log: Path | None = None) -> subprocess.Popen:
    """`python -m pipelines.nightly` in its own session; output to a pipe or to `log`."""
    env = dict(
        os.environ,
        CRM_EXPORTS_DIR=str(exports),
        WAREHOUSE_PATH=str(wh),
        DAGSTER_HOME=str(home),
        PYTHONUNBUFFERED="1",
        NIGHTLY_LOG_LEVEL="DEBUG",
    )
    home.mkdir(exist_ok=True)
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed by the child
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.nightly"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_until_locked(lock: Path, timeout: float = 300) -> None:
    """Return once some process holds the warehouse lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists():
            with open(lock) as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                except BlockingIOError:
                    return
        time.sleep(0.1)
    raise AssertionError("the first run never took the warehouse lock")


def _kill_when(proc: subprocess.Popen, marker: str, timeout: float = 300) -> str:
    """SIGKILL the run (the worker only, as an OOM killer would) once `marker` is logged."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return "".join(seen)
        assert time.monotonic() < deadline, "marker never logged"
    raise AssertionError(f"run ended before {marker!r}:\n{''.join(seen[-20:])}")


def _session_left(sid: int, wait_s: float = 10) -> list[str]:
    """Command lines of the processes still in session `sid` after up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":  # session id, not a zombie
                    left.append((stat.parent / "cmdline").read_text().replace("\0", " "))
            except (OSError, IndexError, ValueError):
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_dbt_dies_with_the_run_that_started_it():
    """The binding itself: a child started the way the launcher (pipelines/dbt_child.py)
    starts dbt (here `sleep`, which never writes, so a broken pipe cannot end it) dies when
    its parent is SIGKILLed."""
    # The launcher's own option, taken out of what dbt is given.
    assert split_parent(["build", "--vars", "{}", "--bind-to-parent", "42", "-t", "dev"]) == (
        42,
        ["build", "--vars", "{}", "-t", "dev"],
    )
    if not dies_with_parent():  # not Linux: nothing binds dbt (see pipelines/dbt_child.py)
        return
    sleep = shutil.which("sleep")
    # The parent gives its pid, as the run gives the launcher its own (--bind-to-parent).
    child = (
        "import sys; from pipelines.dbt_child import exec_bound; "
        f"exec_bound({sleep!r}, ['60'], int(sys.argv[1]))"
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())]); "
            "print(p.pid, flush=True); time.sleep(60)",
            child,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = Path(f"/proc/{int(parent.stdout.readline())}/stat")
    deadline = time.monotonic() + 10
    # bound, then exec'd: the process is sleep itself now (its pid unchanged)
    while (child.parent / "cmdline").read_text().split("\0")[0] != sleep:
        assert time.monotonic() < deadline, "the launcher never exec'd its program"
        time.sleep(0.05)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while child.exists() and child.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def test_a_dbt_whose_run_is_already_gone_never_starts():
    """A run killed between starting the launcher and the binding would never signal its
    dbt: the launcher sees another parent than the run it was given and stops there (here
    the test is its parent, not pid 1)."""
    if not dies_with_parent():
        return
    done = subprocess.run(
        [DBT_LAUNCHER, "--version", "--bind-to-parent", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "--bind-to-parent 1: that process is gone; not starting"
    assert done.stdout == ""  # dbt never ran


@pytest.mark.parametrize(
    "marker",
    [
        # inside the ingest step: tonight's export is committed to the store, not yet checked
        f"Ingested export {NEXT_DAY}",
        "dbt_customer_features - Running dbt command",
        "customer_segmentation - STEP_START",
    ],
)
def test_killed_run_leaves_marts_unchanged_and_next_run_is_green(setup, tmp_path, marker):
    exports, wh, nxt = setup
    rewrite(nxt / "orders.csv", lambda r: r + [["O998", "006", "2026-11-21", "40", "", ""]])
    before = {t: table_bytes(wh, f"marts.{t}") for t in MART_TABLES}
    proc = _start(exports, wh, tmp_path / "home")
    try:
        _kill_when(proc, marker)
        if dies_with_parent():  # no dbt may outlive its run and write the store
            assert _session_left(proc.pid) == [], "dbt outlived the killed run"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # orphaned dbt, if any
        except ProcessLookupError:
            pass
    assert {t: table_bytes(wh, f"marts.{t}") for t in MART_TABLES} == before
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    con = duckdb.connect(str(store_of(wh)), read_only=True)
    try:
        assert con.execute("SELECT max(export_date)::VARCHAR FROM raw.exports").fetchone() == (
            NEXT_DAY,
        )
        # 006 now has two purchase days: frequency 1
        assert con.execute(
            "SELECT frequency FROM marts.customer_features WHERE customer_id = '006'"
        ).fetchone() == (1,)
    finally:
        con.close()


def test_two_runs_at_once_both_end_cleanly(setup, tmp_path):
    exports, wh, _ = setup
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = _start(exports, wh, tmp_path / "home", logs[0])
    # the second surely meets the first
    _wait_until_locked(store_of(wh).with_name("store.duckdb.lock"))
    second = _start(exports, wh, tmp_path / "home", logs[1])
    codes = [p.wait(timeout=600) for p in (first, second)]
    outs = [log.read_text() for log in logs]
    assert codes == [0, 0], [o[-3000:] for o in outs]
    assert "Warehouse busy (held by run" in outs[1]  # it waited, then ran
    # The first may wait too: a night is two runs, and the second launch's ingest can take
    # the warehouse between them (docs/decisions.md, "A night is two runs").
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM marts.customer_features").fetchone() == (8,)
    finally:
        con.close()


def test_erasure_request_removes_customer_from_marts_and_raw(setup):
    exports, wh, nxt = setup
    write_csv(
        nxt,
        "erasure_requests.csv",
        ["customer_id", "email"],
        [["002", ""], ["", "  GUS@example.com"]],
    )
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    meta = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["raw", "customers"]
    ][0]
    assert meta.step_materialization_data.materialization.metadata["customers_erased"].value == 2
    con = duckdb.connect(str(store_of(wh)), read_only=True)
    try:
        for table in MART_TABLES:
            cols = [r[0] for r in con.execute(f"DESCRIBE marts.{table}").fetchall()]
            id_cols = [c for c in cols if "customer_id" in c]
            for col in id_cols:
                hits = con.execute(
                    f"SELECT count(*) FROM marts.{table} WHERE {col} IN ('002', '007')"
                ).fetchone()[0]
                assert hits == 0, f"marts.{table}.{col} still holds an erased customer"
        for table, col in [
            ("customers", "customer_id"),
            ("orders", "customer_id"),
            ("surveys", "customer_id"),
            ("referrals", "referrer_customer_id"),
            ("referrals", "referee_customer_id"),
        ]:
            assert (
                con.execute(
                    f"SELECT count(*) FROM raw.{table} WHERE {col} IN ('002', '007')"
                ).fetchone()[0]
                == 0
            ), f"raw.{table}.{col}"
        assert (
            con.execute(
                "SELECT count(*) FROM history.segment_spells WHERE customer_id IN ('002', '007')"
            ).fetchone()[0]
            == 0
        )
        assert con.execute("SELECT count(*) FROM marts.customer_features").fetchone() == (6,)
        # Staging persists between nights (incremental): the erased are gone from it too,
        # except from the list of who was erased.
        id_cols = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema IN ('staging', 'intermediate') AND column_name LIKE '%customer_id' "
            "AND table_name <> 'stg_erased_customers'"
        ).fetchall()
        assert ("staging", "stg_orders", "customer_id") in id_cols
        for schema, table, col in id_cols:
            assert (
                con.execute(
                    f"SELECT count(*) FROM {schema}.{table} WHERE {col} IN ('002', '007')"
                ).fetchone()[0]
                == 0
            ), f"{schema}.{table}.{col}"
    finally:
        con.close()


def test_no_personal_data_in_marts_or_run_logs(setup):
    exports, wh, _ = setup
    store = duckdb.connect(str(store_of(wh)), read_only=True)
    try:
        pii = set()
        for row in store.execute(
            "SELECT email, first_name, last_name, phone FROM raw.customers"
        ).fetchall():
            pii |= {v.strip().lower() for v in row if v}
        pii |= {
            r[0].lower()
            for r in store.execute(
                "SELECT referee_email FROM raw.referrals WHERE referee_email IS NOT NULL"
            ).fetchall()
        }
    finally:
        store.close()
    assert len(pii) >= 30
    con = duckdb.connect(str(wh), read_only=True)
    try:
        for table in MART_TABLES:
            for row in con.execute(f"SELECT * FROM marts.{table}").fetchall():
                cells = {str(v).strip().lower() for v in row if v is not None}
                assert not (pii & cells), f"marts.{table}: {pii & cells}"
                emails = {p for p in pii if "@" in p}
                assert not any(e in c for e in emails for c in cells), f"marts.{table}"
    finally:
        con.close()
    # Every log line and event of the next night's run, with its metadata.
    _, log_text = run_with_logs(exports.parent)
    assert "nightly_ingest" in log_text and "nightly_refresh" in log_text
    leaked = {p for p in pii if ("@" in p or " " in p) and p in log_text}
    assert not leaked, leaked
