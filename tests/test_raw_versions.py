"""Raw keeps versions, not copies (pipelines/ingest/versions.py), on the hand fixture's
customers and orders delivered over several nights."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.erasure import apply_erasure
from pipelines.ingest import ExportRefused, discover_exports, exports_to_ingest, ingest_export
from pipelines.ingest.versions import VersionCounts, hash_signature
from pipelines.maintenance import drop_superseded_versions
from pipelines.schemas import TABLES as TABLE_SPECS
from pipelines.warehouse_tables import create_python_owned_tables

FIXTURE = Path(__file__).parent / "fixtures" / "hand_export" / "2026-11-21"
TABLES = ("customers", "orders")


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(connection)
    yield connection
    connection.close()


def _rows(table: str) -> list[dict[str, str]]:
    with open(FIXTURE / f"{table}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def export(root: Path, day: str, mode: str = "full", edit=None) -> Path:
    """The fixture's customers and orders as the export of `day`; `edit(table, rows)`
    changes the rows first."""
    folder = root / day
    folder.mkdir(parents=True)
    for table in TABLES:
        rows = _rows(table)
        if edit is not None:
            rows = edit(table, rows)
        with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(_rows(table)[0]))
            writer.writeheader()
            writer.writerows(rows)
    (folder / "referrals.csv").write_text(
        "referral_id,referrer_customer_id,sent_at,status\n", encoding="utf-8"
    )
    (folder / "manifest.json").write_text(json.dumps({"mode": mode}), encoding="utf-8")
    return folder


def ingest(con, root: Path) -> list:
    return [
        ingest_export(con, f, 0.5, "USD") for f in exports_to_ingest(con, discover_exports(root))
    ]


def count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]


def latest(con, table: str, key: str, column: str) -> dict[str, object]:
    """Latest version of each key as staging takes it: the newest _export_date."""
    return dict(
        con.execute(
            f"SELECT {key}, arg_max({column}, _export_date) FROM raw.{table} GROUP BY 1"
        ).fetchall()
    )


def change(table: str, key: str, column: str, value: str):
    def edit(name, rows):
        if name == table:
            for row in rows:
                if row[key] == "002" or row[key] == "O002":
                    row[column] = value
        return rows

    return edit


def test_an_unchanged_full_export_adds_no_raw_rows(con, tmp_path):
    export(tmp_path, "2026-11-21")
    (first,) = ingest(con, tmp_path)
    customers, orders = count(con, "customers"), count(con, "orders")
    assert (customers, orders) == (8, 20)
    export(tmp_path, "2026-11-22")
    (second,) = ingest(con, tmp_path)
    assert (count(con, "customers"), count(con, "orders")) == (8, 20)
    meta = second.as_metadata()["tables"]
    assert meta["customers"]["rows_unchanged"] == 8
    assert [meta["orders"][k] for k in ("rows_new", "rows_changed", "rows_unchanged")] == [
        0,
        0,
        20,
    ]
    assert first.as_metadata()["tables"]["orders"]["rows_new"] == 20
    # what arrived is kept per export
    stored = json.loads(
        con.execute("SELECT tables FROM raw.exports WHERE export_date = '2026-11-22'").fetchone()[0]
    )
    assert stored["orders"]["rows_read"] == 20 and stored["orders"]["rows_unchanged"] == 20


def test_a_tables_first_export_goes_straight_to_raw(con, tmp_path):
    """Orders' first export is written to raw once (no incoming rows to copy); later
    exports are not, nor this fixture's customers (001's email is not in normal form, so
    the file goes the text path)."""
    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-22", edit=change("orders", "order_id", "amount", "99.00"))
    first, second = ingest(con, tmp_path)
    assert (first.tables["orders"].stored, first.tables["customers"].stored) == (True, False)
    assert first.tables["orders"].versions == VersionCounts(20, 0, 0, 0, 0)
    assert second.tables["orders"].stored is False
    assert second.tables["orders"].versions == VersionCounts(0, 1, 19, 0, 0)
    assert count(con, "orders") == 21
    assert latest(con, "orders", "order_id", "amount")["O002"] == 99
    # every first version keeps its line's hash, so the next night can skip its line
    nulls = "SELECT count(*) FROM raw.orders WHERE _line_hash IS NULL"
    assert con.execute(nulls).fetchone()[0] == 0


def test_a_changed_record_adds_exactly_one_version(con, tmp_path):
    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Houston"))
    results = ingest(con, tmp_path)
    assert count(con, "customers") == 9
    assert results[1].tables["customers"].versions.changed == 1
    assert latest(con, "customers", "customer_id", "city")["002"] == "Houston"
    versions = con.execute(
        "SELECT _export_date::VARCHAR, city FROM raw.customers WHERE customer_id = '002' ORDER BY 1"
    ).fetchall()
    assert versions == [("2026-11-21", "Austin"), ("2026-11-22", "Houston")]
    # and changing it back is a third version, not a silent return to the first
    export(tmp_path, "2026-11-23")
    ingest(con, tmp_path)
    assert latest(con, "customers", "customer_id", "city")["002"] == "Austin"
    assert count(con, "customers") == 10


def test_each_version_carries_the_hash_of_its_contract_columns(con, tmp_path):
    export(tmp_path, "2026-11-21")
    ingest(con, tmp_path)
    columns = ", ".join(c.name for c in TABLE_SPECS["orders"].columns)
    mismatched = con.execute(
        f"SELECT count(*) FROM raw.orders WHERE _row_hash IS DISTINCT FROM hash({columns})"
    ).fetchone()[0]
    assert mismatched == 0
    assert con.execute("SELECT count(DISTINCT _row_hash) FROM raw.orders").fetchone()[0] == 20


@pytest.mark.parametrize("how", ["older release: no hashes", "hashed by another DuckDB"])
def test_a_store_of_an_older_release_is_hashed_again_before_it_is_compared(con, tmp_path, how):
    export(tmp_path, "2026-11-21")
    ingest(con, tmp_path)
    if how.startswith("older"):
        con.execute("UPDATE raw.customers SET _row_hash = NULL")
        con.execute("DELETE FROM raw.row_hashes")
    else:
        con.execute("UPDATE raw.customers SET _row_hash = _row_hash + 1")
        con.execute("UPDATE raw.row_hashes SET signature = 'duckdb 0.0.1: hash(...)'")
    export(tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Houston"))
    (second,) = ingest(con, tmp_path)
    # stale hashes would count all 8 customers as changed and store them again
    versions = second.tables["customers"].versions
    assert (versions.new, versions.changed, versions.unchanged) == (0, 1, 7)
    assert count(con, "customers") == 9
    signature = con.execute(
        "SELECT signature FROM raw.row_hashes WHERE table_name = 'customers'"
    ).fetchone()[0]
    assert signature == hash_signature(TABLE_SPECS["customers"])


def test_a_late_export_is_followed_by_the_later_exports_again(con, tmp_path):
    """Night 3 arrives before night 2.  Night 2 changed order O002's status; night 3 has
    the original again: the latest version is night 3's, as if they came in order."""
    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-23")
    ingest(con, tmp_path)
    assert count(con, "orders") == 20
    export(tmp_path, "2026-11-22", edit=change("orders", "order_id", "status", "refunded"))
    todo = exports_to_ingest(con, discover_exports(tmp_path))
    assert [f.path.name for f in todo] == ["2026-11-22", "2026-11-23"]
    for folder in todo:
        ingest_export(con, folder, 0.5, "USD")
    assert latest(con, "orders", "order_id", "status")["O002"] == "completed"
    versions = con.execute(
        "SELECT _export_date::VARCHAR, status FROM raw.orders WHERE order_id = 'O002' ORDER BY 1"
    ).fetchall()
    assert versions == [
        ("2026-11-21", "completed"),
        ("2026-11-22", "refunded"),
        ("2026-11-23", "completed"),
    ]


def test_a_late_export_needs_the_later_folders(con, tmp_path):
    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-23")
    ingest(con, tmp_path)
    shutil.rmtree(tmp_path / "2026-11-23")
    export(tmp_path, "2026-11-22")
    with pytest.raises(ExportRefused, match="2026-11-23"):
        exports_to_ingest(con, discover_exports(tmp_path))


def test_an_incremental_export_keeps_every_row_and_the_latest_wins(con, tmp_path):
    export(tmp_path, "2026-11-21")

    def two_orders(table, rows):
        if table == "orders":
            rows = [r for r in rows if r["order_id"] in ("O001", "O002")]
            rows[1]["amount"] = "99.00"
        return rows if table == "orders" else [r for r in rows if r["customer_id"] in ("001",)]

    export(tmp_path, "2026-11-22", mode="incremental", edit=two_orders)
    ingest(con, tmp_path)
    assert count(con, "orders") == 22  # both rows of the change set, the unchanged one too
    amounts = latest(con, "orders", "order_id", "amount")
    assert str(amounts["O002"]) == "99.0000" and len(amounts) == 20
    # an incremental export lacks most records: none is marked absent
    assert count(con, "record_presence") == 0


def test_a_record_missing_from_a_full_export_stays_and_is_flagged(con, tmp_path):
    def without_dan(table, rows):
        if table == "customers":
            return [r for r in rows if r["customer_id"] != "004"]
        return [r for r in rows if r["customer_id"] != "004"]

    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-22", edit=without_dan)
    results = ingest(con, tmp_path)
    dan_orders = sum(1 for r in _rows("orders") if r["customer_id"] == "004")
    assert results[1].tables["customers"].versions.absent == 1
    assert results[1].tables["orders"].versions.absent == dan_orders > 0
    assert "004" in latest(con, "customers", "customer_id", "city")  # still there
    assert con.execute(
        "SELECT table_name, key, export_date::VARCHAR, present FROM raw.record_presence "
        "WHERE table_name = 'customers'"
    ).fetchall() == [("customers", "004", "2026-11-22", False)]
    # back the next night: present again; absent again is recorded once more
    export(tmp_path, "2026-11-23")
    ingest(con, tmp_path)
    assert con.execute(
        "SELECT export_date::VARCHAR, present FROM raw.record_presence "
        "WHERE table_name = 'customers' ORDER BY 1"
    ).fetchall() == [("2026-11-22", False), ("2026-11-23", True)]
    assert count(con, "customers") == 8  # Dan came back unchanged: no new version


def test_re_ingesting_an_export_replaces_its_versions(con, tmp_path):
    export(tmp_path, "2026-11-21")
    folder = export(
        tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Houston")
    )
    ingest(con, tmp_path)
    assert count(con, "customers") == 9
    shutil.rmtree(folder)
    export(tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Dallas"))
    ingest(con, tmp_path)
    assert count(con, "customers") == 9
    assert latest(con, "customers", "customer_id", "city")["002"] == "Dallas"


def test_retention_drops_only_versions_superseded_before_the_limit(con, tmp_path):
    """Customer 002's city: Austin (21st), Houston (22nd), Dallas (25th).  As of the 25th
    with 2 days' retention, Austin (superseded on the 22nd, 3 days before) goes; Houston
    (superseded on the 25th) and every latest version stay."""
    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Houston"))
    export(tmp_path, "2026-11-25", edit=change("customers", "customer_id", "city", "Dallas"))
    ingest(con, tmp_path)
    assert count(con, "customers") == 10
    dropped = drop_superseded_versions(con, date(2026, 11, 25), 2)
    assert dropped == {"customers": 1}
    assert con.execute(
        "SELECT _export_date::VARCHAR, city FROM raw.customers WHERE customer_id = '002' ORDER BY 1"
    ).fetchall() == [("2026-11-22", "Houston"), ("2026-11-25", "Dallas")]
    assert count(con, "customers") == 9 and count(con, "orders") == 20
    # a longer retention keeps everything; a shorter one keeps the latest versions
    assert drop_superseded_versions(con, date(2026, 11, 25), 30) == {}
    assert drop_superseded_versions(con, date(2026, 11, 25), 0) == {}
    assert drop_superseded_versions(con, date(2026, 11, 26), 0) == {"customers": 1}
    assert latest(con, "customers", "customer_id", "city")["002"] == "Dallas"
    assert count(con, "customers") == 8


def markers(con, table: str) -> list[tuple]:
    """(key, export date, `_superseded_on`) of every version, in order."""
    key = TABLE_SPECS[table].key[0]
    return con.execute(
        f"SELECT {key}, _export_date, _superseded_on FROM raw.{table} ORDER BY 1, 2"
    ).fetchall()


def expected_markers(con, table: str) -> list[tuple]:
    """The same, each version's marker worked out here: the next version's date."""
    key = TABLE_SPECS[table].key[0]
    rows = con.execute(f"SELECT {key}, _export_date FROM raw.{table} ORDER BY 1, 2").fetchall()
    return [
        (k, d, rows[i + 1][1] if i + 1 < len(rows) and rows[i + 1][0] == k else None)
        for i, (k, d) in enumerate(rows)
    ]


def assert_markers_right(con) -> None:
    for table in TABLES:
        assert markers(con, table) == expected_markers(con, table), table
        # and SQL's own lead() over every version agrees
        key = TABLE_SPECS[table].key[0]
        (wrong,) = con.execute(
            f"SELECT count(*) FROM (SELECT _superseded_on, lead(_export_date) OVER "
            f"(PARTITION BY {key} ORDER BY _export_date) AS next FROM raw.{table}) "
            "WHERE _superseded_on IS DISTINCT FROM next"
        ).fetchone()
        assert wrong == 0, table


def edits(*changes):
    def edit(table, rows):
        for one in changes:
            rows = one(table, rows)
        return rows

    return edit


def marker_history(con, tmp_path) -> None:
    """A store after full, changed, late, incremental, unchanged and re-delivered exports,
    the markers checked after each night."""
    export(tmp_path, "2026-11-21")
    ingest(con, tmp_path)
    assert_markers_right(con)
    assert {m for *_, m in markers(con, "customers")} == {None}  # first export: no marker
    # changed: 002 moves to Houston
    export(tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Houston"))
    ingest(con, tmp_path)
    assert_markers_right(con)
    # and back (A -> B -> A): a third version; O002 refunded
    export(tmp_path, "2026-11-24", edit=change("orders", "order_id", "status", "refunded"))
    ingest(con, tmp_path)
    assert_markers_right(con)
    # late: the 23rd (older than the 24th) has O002 cancelled; the 24th is ingested again
    export(tmp_path, "2026-11-23", edit=change("orders", "order_id", "status", "cancelled"))
    (late, again) = ingest(con, tmp_path)
    assert late.tables["orders"].versions.changed == 1
    assert again.tables["orders"].versions.changed == 1  # refunded after cancelled
    assert_markers_right(con)

    # incremental: O001 as it is, O002 with another amount: both stored
    def two_orders(table, rows):
        if table == "orders":
            rows = [r for r in rows if r["order_id"] in ("O001", "O002")]
            rows[1]["amount"] = "99.00"
            return rows
        return [r for r in rows if r["customer_id"] == "001"]

    export(tmp_path, "2026-11-25", mode="incremental", edit=two_orders)
    ingest(con, tmp_path)
    assert_markers_right(con)
    # re-delivered unchanged (the 24th's content): only O002 changes (back from 99.00)
    export(tmp_path, "2026-11-26", edit=change("orders", "order_id", "status", "refunded"))
    (unchanged,) = ingest(con, tmp_path)
    assert unchanged.tables["customers"].versions.changed == 0
    assert unchanged.tables["orders"].versions.changed == 1
    assert_markers_right(con)
    # Austin, Houston, Austin again (the late 23rd delivered it first)
    assert [(d.day, m and m.day) for k, d, m in markers(con, "customers") if k == "002"] == [
        (21, 22),
        (22, 23),
        (23, None),
    ]
    assert [(d.day, m and m.day) for k, d, m in markers(con, "orders") if k == "O002"] == [
        (21, 23),
        (23, 24),
        (24, 25),
        (25, 26),
        (26, None),
    ]


def test_superseded_on_names_the_next_version_after_every_kind_of_export(con, tmp_path):
    marker_history(con, tmp_path)
    # the 22nd re-delivered without its change: its version goes, and the 23rd's (Austin
    # again) is no change any more
    shutil.rmtree(tmp_path / "2026-11-22")
    export(tmp_path, "2026-11-22")
    results = ingest(con, tmp_path)
    assert [r.export_date.day for r in results] == [22, 23, 24, 25, 26]
    assert_markers_right(con)
    # Austin all along now: the 21st's version is the only one, the newest
    assert [(d.day, m and m.day) for k, d, m in markers(con, "customers") if k == "002"] == [
        (21, None)
    ]
    assert latest(con, "customers", "customer_id", "city")["002"] == "Austin"


def test_a_store_without_superseded_on_gets_it_with_its_values(con, tmp_path):
    marker_history(con, tmp_path)
    want = {t: markers(con, t) for t in TABLES}
    for table in TABLE_SPECS:
        con.execute(f"ALTER TABLE raw.{table} DROP COLUMN _superseded_on")
    create_python_owned_tables(con)
    assert {t: markers(con, t) for t in TABLES} == want
    last = con.execute("DESCRIBE raw.orders").fetchall()[-1]
    assert (last[0], last[1]) == ("_superseded_on", "DATE")
    create_python_owned_tables(con)  # once: a no-op now
    assert {t: markers(con, t) for t in TABLES} == want
    # and the next night goes on from there
    export(tmp_path, "2026-11-27", edit=change("customers", "customer_id", "city", "Boston"))
    ingest(con, tmp_path)
    assert_markers_right(con)


def test_retention_by_the_marker_drops_what_a_newer_version_before_the_limit_drops(con, tmp_path):
    marker_history(con, tmp_path)

    def versions(where: str = "", args=()) -> dict[str, set]:
        return {
            t: set(
                con.execute(
                    f"SELECT v.{TABLE_SPECS[t].key[0]}, v._export_date FROM raw.{t} v "
                    + where.format(t=t, key=TABLE_SPECS[t].key[0]),
                    list(args),
                ).fetchall()
            )
            for t in TABLES
        }

    for day in range(21, 29):
        for days in (0, 1, 2):
            before = versions()
            # the rule before the marker: a newer version of the key dated before the limit
            by_exists = versions(
                "WHERE EXISTS (SELECT 1 FROM raw.{t} n WHERE n.{key} = v.{key} "
                "AND n._export_date > v._export_date AND n._export_date < ?)",
                [date(2026, 11, day - days)],
            )
            con.execute("BEGIN TRANSACTION")
            dropped = drop_superseded_versions(con, date(2026, 11, day), days)
            after = versions()
            assert_markers_right(con)  # what is kept is still marked right
            con.execute("ROLLBACK")
            for t in TABLES:
                assert before[t] - after[t] == by_exists[t], (day, days, t)
                assert dropped.get(t, 0) == len(by_exists[t])
    # every version but the newest of a key superseded before the 27th: 001 and 002's
    # first, 002's second; O001's first and O002's first four
    assert drop_superseded_versions(con, date(2026, 11, 27), 0) == {"customers": 3, "orders": 5}
    assert_markers_right(con)


def test_erasure_marks_again_the_versions_it_leaves(con, tmp_path):
    """Order O002 was customer 002's, then 003's: erasing 003 removes its second version
    only, and the first is the newest again."""
    export(tmp_path, "2026-11-21")
    export(tmp_path, "2026-11-22", edit=change("orders", "order_id", "customer_id", "003"))
    ingest(con, tmp_path)
    assert [(d.day, m and m.day) for k, d, m in markers(con, "orders") if k == "O002"] == [
        (21, 22),
        (22, None),
    ]
    con.execute(
        "INSERT INTO raw.erasure_requests (customer_id, _export_date, _line_number) "
        "VALUES ('003', DATE '2026-11-22', 2)"
    )
    removed = apply_erasure(con)
    assert removed["raw.orders"] > 1
    assert [(d.day, m) for k, d, m in markers(con, "orders") if k == "O002"] == [(21, None)]
    assert_markers_right(con)


def test_an_export_older_than_every_stored_one_is_superseded_at_once(con, tmp_path):
    """The 21st arrives after the 22nd: stored as the tables' first export, its versions
    are superseded by the 22nd's before the 22nd is ingested again."""
    export(tmp_path, "2026-11-22", edit=change("customers", "customer_id", "city", "Houston"))
    ingest(con, tmp_path)
    export(tmp_path, "2026-11-21")
    late, again = exports_to_ingest(con, discover_exports(tmp_path))
    ingest_export(con, late, 0.5, "USD")
    assert {m for _, d, m in markers(con, "customers") if d.day == 21} == {date(2026, 11, 22)}
    assert_markers_right(con)
    ingest_export(con, again, 0.5, "USD")
    assert_markers_right(con)
    assert [(d.day, m and m.day) for k, d, m in markers(con, "customers") if k == "002"] == [
        (21, 22),
        (22, None),
    ]
    assert {d.day for _, d, _ in markers(con, "orders")} == {21}
