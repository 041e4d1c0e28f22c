"""The analysts' first query works: every SQL block of the README's analyst section runs as
written in the DuckDB CLI that `make install` installs, on the warehouse a real run
published, and `make sql` opens that warehouse read-only.

The warehouse is a copy of the session's `hand_night` (tests/conftest.py). Values are
checked against computations that do not go through the CLI: the duckdb Python package on
the same file, the pipeline's store, and the fixture's own CSV files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines import sql_client
from tests.pipeline_runner import copy_night, store_of

PROJECT_ROOT = Path(__file__).resolve().parent.parent
README = PROJECT_ROOT / "README.md"
SECTION = "### For analysts: querying the warehouse"


def analyst_queries() -> list[str]:
    """The ```sql blocks of the README's analyst section (up to the next heading of level 1
    to 3), in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION) + len(SECTION)
    end = re.compile(r"^#{1,3} ", re.M).search(text, start)
    section = text[start : end.start() if end else len(text)]
    return re.findall(r"^```sql\n(.*?)^```", section, re.M | re.S)


QUERIES = analyst_queries()


def query_id(sql: str) -> str:
    """The block's first comment line, as the test id."""
    first = sql.strip().splitlines()[0]
    return re.sub(r"\W+", "_", first.lstrip("- ")).strip("_")[:60]


def query_about(word: str) -> str:
    """The one README query whose opening comment contains `word`."""
    found = [q for q in QUERIES if word in q.strip().splitlines()[0]]
    assert len(found) == 1, f"README analyst queries about {word!r}: {len(found)}"
    return found[0]


def run_cli(warehouse: Path, sql: str) -> list[dict[str, str]]:
    """`sql` through the installed DuckDB CLI (the command `make sql` runs, plus `-csv -c`):
    the rows of its last result, NULL as 'NULL'."""
    done = subprocess.run(
        sql_client.command(warehouse, "-csv", "-c", sql),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and not done.stderr, (done.returncode, done.stderr, sql)
    return list(csv.DictReader(io.StringIO(done.stdout)))


def python_rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def decimal_or_none(value: str) -> Decimal | None:
    return None if value == "NULL" else Decimal(value)


def make_sql(warehouse: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    """`make sql` on `warehouse`, fed `stdin` (the CLI reads it as a script, no prompt)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["WAREHOUSE_PATH"] = str(warehouse)
    return subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(PROJECT_ROOT), "sql"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def night(hand_night: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the hand fixture's published night (its warehouse, store and exports)."""
    target = tmp_path_factory.mktemp("readme_queries")
    copy_night(hand_night, target)
    return target


@pytest.fixture(scope="module")
def warehouse(night: Path) -> Path:
    return night / "warehouse.duckdb"


def test_the_analyst_section_has_the_queries() -> None:
    assert len(QUERIES) >= 5, QUERIES
    for sql in QUERIES:
        assert "marts." in sql or "audit." in sql, sql


def test_the_published_file_holds_only_marts_and_audit(warehouse: Path) -> None:
    rows = run_cli(warehouse, "SELECT DISTINCT schema_name FROM duckdb_tables() ORDER BY 1")
    assert [r["schema_name"] for r in rows] == ["audit", "marts"]


@pytest.mark.parametrize("sql", QUERIES, ids=[query_id(q) for q in QUERIES])
def test_readme_query_runs_as_written_and_returns_rows(warehouse: Path, sql: str) -> None:
    rows = run_cli(warehouse, sql)
    assert rows, f"no row from the README query:\n{sql}"


def test_segment_roi_has_every_segment_and_the_all_row(warehouse: Path) -> None:
    rows = run_cli(warehouse, query_about("best referral return"))
    (segments,) = python_rows(
        warehouse, "SELECT count(DISTINCT segment_id) FROM marts.customer_segments"
    )[0]
    names = {
        name
        for (name,) in python_rows(
            warehouse, "SELECT DISTINCT segment_name FROM marts.customer_segments"
        )
    }
    assert len(rows) == segments + 1
    assert {r["segment_name"] for r in rows} == names | {"All customers"}
    assert (
        sum(int(r["customers"]) for r in rows if r["segment_name"] != "All customers")
        == (python_rows(warehouse, "SELECT count(*) FROM marts.customer_segments")[0][0])
    )


def test_cac_referred_vs_paid_follows_its_definitions(night: Path, warehouse: Path) -> None:
    rows = run_cli(warehouse, query_about("cost through referrals"))
    # paid_cac (metrics.md): sum(spend) / sum(new_customers), months up to the as-of date,
    # here from the fixture's own marketing_spend.csv (USD, the base currency).
    (as_of,) = python_rows(warehouse, "SELECT max(export_date) FROM audit.exports")[0]
    spend_csv = next((night / "exports").glob("*/marketing_spend.csv"))
    con = duckdb.connect()
    try:
        (paid,) = con.execute(
            "SELECT round(sum(spend) / sum(new_customers), 4) FROM read_csv(?) WHERE month <= ?",
            [str(spend_csv), as_of],
        ).fetchone()
    finally:
        con.close()
    assert paid is not None
    assert {decimal_or_none(r["paid_cac"]) for r in rows} == {Decimal(str(paid))}
    # referral_cac: total_cost / referred_customers, NULL without referred customers
    converted = [r for r in rows if int(r["referred_customers"]) > 0]
    assert converted, "the fixture has referred customers"
    for r in rows:
        referred = int(r["referred_customers"])
        expected = (
            (Decimal(r["total_cost"]) / referred).quantize(Decimal("0.0001")) if referred else None
        )
        assert decimal_or_none(r["referral_cac"]) == expected, r
        if expected is not None:
            assert Decimal(r["referral_vs_paid"]) == round(expected / Decimal(str(paid)), 2), r


def test_customer_lookup_finds_the_customer_and_their_segment(warehouse: Path) -> None:
    (row,) = run_cli(warehouse, query_about("One customer"))
    first, segment, name = python_rows(
        warehouse,
        "SELECT customer_id, segment_id, segment_name FROM marts.customer_segments "
        "ORDER BY customer_id LIMIT 1",
    )[0]
    assert (row["customer_id"], row["segment_id"], row["segment_name"]) == (first, segment, name)
    (incentive,) = python_rows(
        warehouse,
        f"SELECT recommended_incentive FROM marts.segment_profiles WHERE segment_id = '{segment}'",
    )[0]
    assert row["recommended_incentive"] == incentive


def test_quarantine_counts_match_the_pipelines_store(night: Path, warehouse: Path) -> None:
    """The audit counts analysts see equal the rows in the store's raw.quarantine (which
    the analysts' file never holds), per export."""
    store = store_of(warehouse)
    quarantined = dict(
        python_rows(store, "SELECT export_date::VARCHAR, count(*) FROM raw.quarantine GROUP BY 1")
    )
    exports = [d for (d,) in python_rows(store, "SELECT export_date::VARCHAR FROM raw.exports")]
    per_system = run_cli(warehouse, query_about("read, quarantined and loaded"))
    by_reason = run_cli(warehouse, query_about("Why rows were quarantined"))
    for export_date in exports:
        expected = quarantined.get(export_date, 0)
        got = [int(r["rows_quarantined"]) for r in per_system if r["export_date"] == export_date]
        assert got and sum(got) == expected, (export_date, got, expected)
        got = [int(r["rows"]) for r in by_reason if r["export_date"] == export_date]
        assert got and sum(got) == expected, (export_date, got, expected)
    # rows read: the records of the exports' CSV files, counted by DuckDB's CSV reader
    con = duckdb.connect()
    try:
        records = sum(
            con.execute(
                "SELECT count(*) FROM read_csv(?, all_varchar = true)", [str(f)]
            ).fetchone()[0]
            for f in (night / "exports").glob("*/*.csv")
        )
    finally:
        con.close()
    assert sum(int(r["rows_read"]) for r in per_system) == records


def test_make_sql_opens_the_warehouse_read_only(warehouse: Path, tmp_path: Path) -> None:
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    before = hashlib.sha256(copy.read_bytes()).hexdigest()

    done = make_sql(copy, "SELECT count(*) AS n FROM marts.customer_segments;\n")
    assert done.returncode == 0, done.stderr
    (customers,) = python_rows(copy, "SELECT count(*) FROM marts.customer_segments")[0]
    assert re.search(rf"│\s+{customers}\s+│", done.stdout), done.stdout

    writes = (
        "CREATE TABLE marts.scratch AS SELECT 1 AS x;\n",
        "DELETE FROM marts.customer_segments;\n",
        "DROP TABLE marts.top_referrers;\n",
    )
    for sql in writes:
        done = make_sql(copy, sql)
        assert done.returncode != 0, (sql, done.stdout)
        assert "read-only" in done.stderr, done.stderr
    # the same through the command line itself (what `make sql` execs)
    failed = subprocess.run(
        sql_client.command(copy, "-c", writes[0]), capture_output=True, text=True, timeout=120
    )
    assert failed.returncode != 0 and "read-only" in failed.stderr, failed.stderr

    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert python_rows(copy, "SELECT count(*) FROM marts.customer_segments")[0][0] == customers
    assert not python_rows(copy, "SELECT 1 FROM duckdb_tables() WHERE table_name = 'scratch'"), (
        "a write went through"
    )
    assert sql_client.command(copy)[1:] == ["-readonly", str(copy)]


def test_make_sql_without_a_warehouse_says_to_run_first(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "warehouse.duckdb"
    done = make_sql(missing, "SELECT 1;\n")
    assert done.returncode != 0
    assert f"No warehouse at {missing}" in done.stderr
    assert "run `make run` first" in done.stderr
    assert not missing.exists()
