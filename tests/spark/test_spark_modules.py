"""pipelines/spark without a JVM: the server's command line and its failures to start
(a stand-in spark-submit), and the lake's files.  Spark reading them back is in
test_dbt_on_spark.py."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.spark import server
from pipelines.spark.lake import land_duckdb_tables, read_landed, spark_type


def _settings(command: list[str]) -> dict[str, str]:
    return dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--conf")


def test_server_command(tmp_path: Path):
    command = server.server_command(15123, tmp_path / "warehouse", master="local[1]")
    settings = _settings(command)
    assert command[command.index("--class") + 1] == server.SERVER_CLASS
    assert command[command.index("--master") + 1] == "local[1]"
    assert settings["spark.connect.grpc.binding.port"] == "15123"
    assert settings["spark.connect.grpc.port.maxRetries"] == "0"  # that port or none
    assert settings["spark.sql.warehouse.dir"] == str((tmp_path / "warehouse").resolve())
    assert settings["spark.sql.catalogImplementation"] == "in-memory"
    assert settings["spark.sql.session.timeZone"] == "UTC"

    kept = server.server_command(
        1, tmp_path, metastore_dir=tmp_path / "meta", conf={"spark.sql.shuffle.partitions": "1"}
    )
    settings = _settings(kept)
    assert settings["spark.sql.catalogImplementation"] == "hive"
    assert (
        str((tmp_path / "meta").resolve() / "metastore_db")
        in (settings["spark.hadoop.javax.jdo.option.ConnectionURL"])
    )
    assert settings["spark.sql.shuffle.partitions"] == "1"  # the caller's settings win


def _fake_spark_submit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    path = tmp_path / "spark-submit"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(server, "spark_submit", lambda: path)


def test_a_server_that_exits_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _fake_spark_submit(
        tmp_path, monkeypatch, 'echo "Exception: no such class $PYSPARK_PYTHON"; exit 3'
    )
    log = tmp_path / "logs" / "server.log"
    with pytest.raises(server.SparkConnectStartError) as error:
        with server.local_spark_connect(tmp_path / "warehouse", log, timeout_s=30):
            pytest.fail("started")
    message = str(error.value)
    assert "exited with code 3" in message and str(log) in message
    assert "Exception: no such class" in message  # the log's tail, with the worker python


def test_a_server_that_never_listens_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pid_file = tmp_path / "pid"
    _fake_spark_submit(tmp_path, monkeypatch, f"echo $$ > {pid_file}; echo starting; exec sleep 60")
    with pytest.raises(server.SparkConnectStartError, match="within 1 s") as error:
        server.start_spark_connect(tmp_path / "warehouse", tmp_path / "server.log", timeout_s=1)
    assert "starting" in str(error.value)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)


def test_spark_types_of_duckdb_types():
    assert spark_type("TIMESTAMP") == (None, "timestamp_ntz")
    assert spark_type("DECIMAL(18,4)") == (None, "decimal(18,4)")
    assert spark_type("UBIGINT") == ("DECIMAL(20,0)", "decimal(20,0)")
    assert spark_type("JSON") == ("VARCHAR", "string")
    with pytest.raises(ValueError, match="raw.t.tags: DuckDB type VARCHAR\\[\\]"):
        spark_type("VARCHAR[]", "raw.t.tags")


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_landing_is_partitioned_typed_and_deterministic(tmp_path: Path):
    source = tmp_path / "store.duckdb"
    con = duckdb.connect(str(source))
    try:
        con.execute("create schema raw; create schema marts")
        con.execute(
            "create table raw.orders (id varchar, extra json, _row_hash ubigint, _export_date date)"
        )
        con.execute(
            "insert into raw.orders values ('b', '{}', 2, '2026-11-21'), "
            "('a', null, 1, '2026-11-20'), ('c', '[1]', 3, '2026-11-21')"
        )
        con.execute("create table raw.exports (export_date date, files json)")
        con.execute("create table marts.customer_segments as select 'C1' as customer_id")
    finally:
        con.close()
    tables = [("raw", "orders"), ("raw", "exports"), ("marts", "customer_segments")]
    first = land_duckdb_tables(source, tmp_path / "lake", tables)
    orders = tmp_path / "lake" / "raw" / "orders"
    assert sorted(p.name for p in orders.iterdir()) == [
        "_columns.json",
        "_export_date=2026-11-20",
        "_export_date=2026-11-21",
    ]
    assert first[0].columns == (
        ("id", "string"),
        ("extra", "string"),
        ("_row_hash", "decimal(20,0)"),
        ("_export_date", "date"),
    )
    assert read_landed(tmp_path / "lake", "raw", "orders") == first[0]
    # no _export_date (raw.exports) or not raw: one file, not partitioned
    assert first[1].partition_column is None and first[2].partition_column is None
    assert (tmp_path / "lake" / "marts" / "customer_segments" / "data_0.parquet").exists()

    before = _digest(tmp_path / "lake")
    land_duckdb_tables(source, tmp_path / "lake", tables)
    assert _digest(tmp_path / "lake") == before
    assert not list((tmp_path / "lake" / "raw").glob("*.landing"))
    assert not list((tmp_path / "lake" / "raw").glob("*.old"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_server_dies_with_the_process_that_started_it(tmp_path: Path):
    """A test or run killed with SIGKILL cannot stop its server: the kernel does, also
    when the run ignores SIGTERM (an ignored signal is inherited across exec: a pytest
    worker of `make test` had it ignored, and the server outlived it)."""
    pid_file = tmp_path / "pid"
    fake = tmp_path / "spark-submit"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal; from pathlib import Path; from pipelines.spark import server; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"server.spark_submit = lambda: Path({str(fake)!r}); "
            f"server.start_spark_connect(Path({str(tmp_path)!r}), Path({str(tmp_path / 'log')!r}))",
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the stand-in server never started"
        time.sleep(0.1)
    server_pid = int(pid_file.read_text())
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 10
    while _alive(server_pid):
        assert time.monotonic() < deadline, "the server outlived the process that started it"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, dead but not reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
