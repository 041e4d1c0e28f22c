"""The analysts' report on the hand fixture (tests/fixtures/hand_export, as_of 2026-11-21).

One real nightly run builds the published warehouse; the report is then built from it.
"""

from __future__ import annotations

import fcntl
import html
import re
import shutil
from pathlib import Path

import dagster
import duckdb
import pytest

from pipelines.report import build_report, report_asset
from pipelines.resources import PublishedWarehouse, ReportsResource
from tests.pipeline_runner import MART_TABLES, copy_night, store_of


@pytest.fixture(scope="module")
def warehouse(hand_night, tmp_path_factory) -> Path:
    """The hand fixture's night (run once per session, tests/conftest.py), in a copy."""
    return copy_night(hand_night, tmp_path_factory.mktemp("report_hand"))


@pytest.fixture(scope="module")
def report(warehouse, tmp_path_factory):
    return build_report(warehouse, tmp_path_factory.mktemp("reports"))


def query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# The marts with a row per customer: their extracts exist only in latest/.
PER_CUSTOMER = {"customer_features", "customer_segments", "segment_history", "top_referrers"}


def test_report_files_and_result(report):
    folder = report.report_path.parent
    assert folder.name == "2026-11-21" and report.report_path.name == "report.html"
    assert report.latest_path == folder.parent / "latest.html"
    assert report.latest_path.read_bytes() == report.report_path.read_bytes()
    assert sorted(report.extracts) == sorted(MART_TABLES)
    assert {p.parent for p in report.extracts.values()} == {folder.parent / "latest"}
    assert {p.name for p in (folder.parent / "latest").iterdir()} == {
        f"{t}.parquet" for t in MART_TABLES
    }  # no temporary file left
    assert {p.name for p in folder.iterdir()} == {
        "report.html",
        *(f"{t}.parquet" for t in set(MART_TABLES) - PER_CUSTOMER),
    }
    assert (report.customers, report.segments, report.overall_roi) == (8, 6, -0.333333)
    assert report.extract_rows["customer_features"] == 8
    assert report.extract_rows["segment_migrations"] == 0


def test_report_content(report, warehouse):
    page = report.report_path.read_text(encoding="utf-8")
    assert "as of 2026-11-21" in page
    names = [r[0] for r in query(warehouse, "SELECT segment_name FROM marts.segment_profiles")]
    assert len(names) == 6
    for name in names:
        assert f"<td>{html.escape(name)}<br>" in page, name
    # headline ROI of the 'all' row: (140 - 210) / 210 = -0.333333 -> two decimals
    assert '<div class="v">-0.33</div><div class="k"><a href="#def-roi">ROI</a>' in page
    assert '<div class="v">210.00</div>' in page  # total cost
    assert page.count("<svg") == 4  # one run: no migration matrix
    assert "No migrations yet" in page
    assert "@" not in page  # no email address (and no CSS at-rule either)
    assert not re.search(r"<script|<link|https?:|url\(", page)  # self-contained
    for key in ("roi", "share_rate", "clv_12m", "low_confidence"):
        assert f'id="def-{key}"' in page and f'href="#def-{key}"' in page


def test_page_holds_no_customer_rows(report, warehouse):
    page = report.report_path.read_text(encoding="utf-8")
    ids = [r[0] for r in query(warehouse, "SELECT customer_id FROM marts.top_referrers")]
    assert ids == ["001", "002", "003"]
    assert not re.search(r"\b00[1-8]\b", page)  # customer ids 001..008
    assert "customer_id" not in page


@pytest.mark.parametrize("table", MART_TABLES)
def test_parquet_extracts_equal_the_marts(report, warehouse, table):
    path = str(report.extracts[table]).replace("'", "''")
    mart = query(warehouse, f"SELECT * FROM marts.{table}")
    extract = query(warehouse, f"SELECT * FROM read_parquet('{path}')")
    assert sorted(map(repr, extract)) == sorted(map(repr, mart))  # same values and types


def test_dated_extracts_hold_no_customer_rows_and_equal_latest(report):
    """Per-customer rows only in latest/ (rewritten each night, after erasure); what a dated
    folder keeps is the same bytes as latest's extract of that night."""
    folder, latest = report.report_path.parent, report.report_path.parent.parent / "latest"
    for path in folder.glob("*.parquet"):
        assert (latest / path.name).read_bytes() == path.read_bytes(), path.name
        con = duckdb.connect()
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()]
        con.close()
        assert "customer_id" not in cols, path.name


def test_older_dated_folders_lose_their_customer_rows(warehouse, tmp_path):
    """Reports written by the earlier layout kept every mart per night (6 MiB a night at
    100k customers, and an erased customer's rows forever): the next report removes them."""
    old = tmp_path / "2026-10-01"
    old.mkdir(parents=True)
    for name in ("customer_features.parquet", "top_referrers.parquet", "segment_profiles.parquet"):
        (old / name).write_bytes(b"old")
    (old / "report.html").write_text("old page")
    build_report(warehouse, tmp_path)
    assert sorted(p.name for p in old.iterdir()) == ["report.html", "segment_profiles.parquet"]


def test_customer_features_extract_is_in_key_order(report, warehouse):
    path = str(report.extracts["customer_features"])
    stored = query(warehouse, f"SELECT * FROM read_parquet('{path}')")
    assert stored == query(warehouse, "SELECT * FROM marts.customer_features ORDER BY customer_id")


def test_same_warehouse_gives_identical_bytes(report, warehouse, tmp_path):
    again = build_report(warehouse, tmp_path)
    first, second = report.report_path.parent.parent, again.report_path.parent.parent
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_migration_matrix_and_escaping(warehouse, tmp_path):
    """A second run's migrations add the fifth chart; every name is escaped."""
    wh = tmp_path / "two_runs.duckdb"
    shutil.copyfile(warehouse, wh)
    con = duckdb.connect(str(wh))
    try:
        con.execute(
            "UPDATE marts.segment_profiles SET segment_name = 'Big <b>spenders</b> & co' "
            "WHERE segment_id = 'S01'"
        )
        con.execute("""INSERT INTO marts.segment_migrations VALUES
            ('2026-11-20', '2026-11-21', 'S01', 'Occasional buyers', 'S01',
             'Occasional buyers', 1, 0.5, false, true),
            ('2026-11-20', '2026-11-21', 'S01', 'Occasional buyers', 'S03',
             'New customers', 1, 0.5, true, true),
            ('2026-11-19', '2026-11-20', 'S02', 'Old', 'S03', 'Older', 9, 1.0, true, false)""")
    finally:
        con.close()
    page = build_report(wh, tmp_path / "out").report_path.read_text(encoding="utf-8")
    assert page.count("<svg") == 5
    assert "Segment migrations 2026-11-20 \u2192 2026-11-21" in page
    assert "Older" not in page  # only the latest pair of runs
    assert "Big &lt;b&gt;spenders&lt;/b&gt; &amp; co" in page and "<b>" not in page


def test_asset_writes_to_reports_dir(warehouse, tmp_path):
    """The report reads the published file only: it neither waits for a run holding the
    warehouse lock (held here) nor opens the pipeline's store."""
    before = warehouse.read_bytes()
    store = store_of(warehouse)
    store_before = store.read_bytes()
    with open(warehouse.with_name(warehouse.name + ".lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = dagster.materialize(
            [report_asset],
            resources={
                "published": PublishedWarehouse(path=str(warehouse)),
                "reports": ReportsResource(path=str(tmp_path / "reports")),
            },
        )
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert event.asset_key == dagster.AssetKey(["reports", "referral_roi"])
    assert meta["report"].value == str(tmp_path / "reports" / "2026-11-21" / "report.html")
    assert (meta["as_of_date"].value, meta["segments"].value) == ("2026-11-21", 6)
    assert meta["overall_roi"].value == pytest.approx(-0.333333)
    assert (tmp_path / "reports" / "latest.html").exists()
    assert warehouse.read_bytes() == before  # the published file is only read
    assert store.read_bytes() == store_before  # nor the pipeline's store


def test_the_extracts_are_written_within_the_memory_limit(report, warehouse, tmp_path, monkeypatch):
    """The report's DuckDB takes WAREHOUSE_MEMORY_LIMIT (DuckDB's default is 80% of RAM:
    ~1 GB per million customers went to the sorted copies); a small pool spills, and the
    files are the same bytes."""
    configs = []
    connect = duckdb.connect

    def spy(*args, **kwargs):
        configs.append(kwargs.get("config"))
        return connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spy)
    again = build_report(warehouse, tmp_path, memory_limit="32MB")
    assert configs == [{"memory_limit": "32MB"}]
    first, second = report.report_path.parent.parent, again.report_path.parent.parent
    for path in sorted(first.rglob("*.parquet")):
        assert (second / path.relative_to(first)).read_bytes() == path.read_bytes(), path.name
