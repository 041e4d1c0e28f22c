"""The incremental staging models (stg_orders, stg_events, stg_customers, stg_referrals
here) stage only the exports not staged yet, and rebuild from all of raw when what they
staged changed (dbt_project/macros/incremental_staging.sql).

Night by night on a small hand-made raw dataset; every expected row is worked out by hand
from the rows inserted (newest export wins; amount_base = amount * EUR rate), and the last
night is compared with a `--full-refresh` build of the same raw data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.warehouse_tables import create_python_owned_tables
from tests.dbt import dbt_test_failures, invoke_dbt_logged, money

SELECT = ["--select", "+stg_orders", "+stg_events", "+stg_customers", "+stg_referrals"]
D1, D2, D3, D4 = "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"
ORDER_COLS = (
    "order_id, customer_id, order_date, amount, currency, status, _export_date, _line_number"
)


class Warehouse:
    def __init__(self, tmp: Path, dbt_vars: dict | None = None) -> None:
        self.tmp = tmp
        self.dbt_vars = dbt_vars or {}
        self.path = tmp / "warehouse.duckdb"
        con = duckdb.connect(str(self.path))
        create_python_owned_tables(con)
        con.close()

    def sql(self, statement: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.path))
        try:
            cur = con.execute(statement, params or [])
            return cur.fetchall() if cur.description else []
        finally:
            con.close()

    def export(self, day: str, files: str = "{}") -> None:
        self.sql("DELETE FROM raw.exports WHERE export_date = ?", [day])
        self.sql(
            "INSERT INTO raw.exports (export_date, mode, folder, files) "
            "VALUES (?, 'incremental', ?, ?)",
            [day, day, files],
        )

    def orders(self, *rows: tuple) -> None:
        for line, row in enumerate(rows, start=2):
            self.sql(
                f"INSERT INTO raw.orders ({ORDER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [*row, line],
            )

    def events(self, day: str, *rows: tuple) -> None:
        for line, (event_id, customer) in enumerate(rows, start=2):
            self.sql(
                "INSERT INTO raw.events (event_id, customer_id, occurred_at, event_type, "
                "_export_date, _line_number) VALUES (?, ?, '2026-10-01', 'social_share', ?, ?)",
                [event_id, customer, day, line],
            )

    def eur(self, day: str, rate: str) -> None:
        self.sql(
            "INSERT INTO raw.fx_rates (currency, rate_to_base, _export_date, _line_number) "
            "VALUES ('EUR', ?, ?, 2)",
            [rate, day],
        )

    def customer(self, day: str, customer_id: str, email: str) -> None:
        self.sql(
            "INSERT INTO raw.customers (customer_id, email, signup_date, _export_date, "
            "_line_number) VALUES (?, ?, '2025-01-01', ?, 2)",
            [customer_id, email, day],
        )

    def referral(self, day: str, referral_id: str, referrer: str, referee: str) -> None:
        self.sql(
            "INSERT INTO raw.referrals (referral_id, referrer_customer_id, "
            "referee_customer_id, sent_at, status, _export_date, _line_number) "
            "VALUES (?, ?, ?, '2026-09-01', 'sent', ?, 2)",
            [referral_id, referrer, referee, day],
        )

    def dbt(self, *extra: str) -> list[str]:
        """Runs the staging models; returns what they logged (rebuild reasons, and how
        each incremental model merged)."""
        extra = list(extra)
        given = json.loads(extra.pop(extra.index("--vars") + 1)) if "--vars" in extra else {}
        if "--vars" in extra:
            extra.remove("--vars")
        dbt_vars = {**getattr(self, "dbt_vars", {}), **given}
        if dbt_vars:
            extra += ["--vars", json.dumps(dbt_vars)]

        said = invoke_dbt_logged(["run", *SELECT, *extra], self.tmp, self.path)
        self.merges = [s for s in said if ": merged by " in s]
        return [s for s in said if "rebuilt from all of raw" in s]

    def staged_orders(self) -> dict[str, tuple]:
        rows = self.sql(
            "SELECT order_id, amount, amount_base, source_export_date::VARCHAR "
            "FROM staging.stg_orders"
        )
        return {r[0]: r[1:] for r in rows}

    def staged_events(self) -> dict[str, str]:
        rows = self.sql("SELECT event_id, source_export_date::VARCHAR FROM staging.stg_events")
        return dict(rows)


@pytest.fixture(scope="module", params=[0.1, 1.0], ids=["default-merge", "delete-insert-merge"])
def nights(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """The warehouse after each night, with what each night's build logged; once with the
    default merge (these batches are large next to these tiny tables: a new table), once
    with every merge a DELETE and INSERT (`replace_keys_small_batch` 1.0)."""
    wh = Warehouse(
        tmp_path_factory.mktemp("incremental"), {"replace_keys_small_batch": request.param}
    )
    seen: dict[str, dict] = {}

    def night(name: str, *extra: str) -> None:
        seen[name] = {
            "rebuilt": wh.dbt(*extra),
            "merged": wh.merges,
            "orders": wh.staged_orders(),
            "events": wh.staged_events(),
            "referees": dict(
                wh.sql("SELECT referral_id, referee_customer_id FROM staging.stg_referrals")
            ),
            "email_hash": wh.sql(
                "SELECT email_hash FROM staging.stg_customers WHERE customer_id = 'C1'"
            )[0][0],
            "state": wh.sql(
                "SELECT export_date::VARCHAR, raw_rows FROM staging.stg_orders__staged ORDER BY 1"
            ),
        }

    # Night 1: first build.  EUR = 2.
    wh.export(D1)
    wh.eur(D1, "2")
    wh.orders(
        (
            "A",
            "C1",
            "2026-10-01",
            10,
            "USD",
            "completed",
            D1,
        ),
        ("B", "C2", "2026-10-02", 20, "EUR", "completed", D1),
        ("C", "C3", "2026-10-03", 5, "USD", "completed", D1),
    )
    wh.events(D1, ("E1", "C1"), ("E2", "C2"))
    wh.customer(D1, "C1", "a@x.com")
    wh.referral(D1, "R1", "C1", "C9")
    night("1 first build")
    # Night 2: A changed, D new, B and C not in the export (incremental): staged as before.
    wh.export(D2)
    wh.eur(D2, "2")
    wh.orders(
        ("A", "C1", "2026-10-01", 11, "USD", "completed", D2),
        ("D", "C1", "2026-10-04", 7, "USD", "completed", D2),
    )
    wh.events(D2, ("E3", "C3"))
    night("2 incremental")
    # Night 3: C3 erased (ingest records the request and deletes their raw rows, from the
    # staged export D1 too).
    wh.sql("DELETE FROM raw.orders WHERE customer_id = 'C3'")
    wh.sql("DELETE FROM raw.events WHERE customer_id = 'C3'")
    wh.export(D3)
    wh.sql(
        "INSERT INTO raw.erasure_requests (customer_id, _export_date, _line_number) "
        "VALUES ('C3', ?, 2)",
        [D3],
    )
    night("3 erasure")
    # Night 4: the EUR rate changes to 3: B (staged on night 1) must be converted again.
    wh.export(D4)
    wh.eur(D4, "3")
    night("4 fx change")
    # Night 5: an export dated before the newest staged one arrives late, with order F.
    wh.export("2026-10-31")
    wh.orders(("F", "C2", "2026-10-05", 9, "USD", "completed", "2026-10-31"))
    night("5 late export")
    # Night 6: export D2 is re-delivered (new fingerprint) with A = 12 instead of 11.
    wh.sql("DELETE FROM raw.orders WHERE _export_date = ?", [D2])
    wh.export(D2, files='{"orders.csv": {"size": 2}}')
    wh.orders(
        ("A", "C1", "2026-10-01", 12, "USD", "completed", D2),
        ("D", "C1", "2026-10-04", 7, "USD", "completed", D2),
    )
    night("6 re-delivered export")
    # Night 7: nothing new.
    night("7 nothing new")
    # Night 8: referee C9 asks to be erased; ingest clears the referee of R1 in raw (an
    # update: no raw row count changes).
    wh.sql(
        "INSERT INTO raw.erasure_requests (customer_id, _export_date, _line_number) "
        "VALUES ('C9', '2026-11-05', 2)"
    )
    wh.sql("UPDATE raw.referrals SET referee_customer_id = NULL WHERE referee_customer_id = 'C9'")
    wh.export("2026-11-05")
    night("8 referee erased")
    # Night 9: a new email hash salt.
    night("9 new salt", "--vars", '{"email_hash_salt": "another-salt"}')
    return wh, seen


def test_first_build_and_incremental_night(nights):
    _, seen = nights
    first, second = seen["1 first build"], seen["2 incremental"]
    assert first["rebuilt"] == []  # a first build is a plain full build
    assert first["orders"] == {
        "A": (money("10"), money("10"), D1),
        "B": (money("20"), money("40"), D1),  # 20 EUR * 2
        "C": (money("5"), money("5"), D1),
    }
    assert second["rebuilt"] == []  # merged, not rebuilt
    assert second["orders"] == {
        "A": (money("11"), money("11"), D2),  # the newer export wins
        "B": (money("20"), money("40"), D1),  # not in export D2: staged version stays
        "C": (money("5"), money("5"), D1),
        "D": (money("7"), money("7"), D2),
    }
    assert second["events"] == {"E1": D1, "E2": D1, "E3": D2}
    assert second["state"] == [(D1, 3), (D2, 2)]


def test_each_merge_takes_the_path_its_batch_size_asks_for(nights):
    wh, seen = nights
    merged = seen["2 incremental"]["merged"]
    # night 2: 2 orders of 3 staged, 1 event of 2: large batches, unless every batch is small
    path = "delete and insert" if wh.dbt_vars["replace_keys_small_batch"] == 1.0 else "a new table"
    assert f"stg_orders: merged by {path}" in merged
    assert f"stg_events: merged by {path}" in merged


@pytest.mark.parametrize(
    ("night", "reason"),
    [
        ("3 erasure", "erasure requests"),
        ("4 fx change", "fx rates"),
        ("5 late export", "older than the newest staged one"),
        ("6 re-delivered export", "re-ingested"),
    ],
)
def test_rebuilds_when_what_was_staged_changed(nights, night, reason):
    _, seen = nights
    rebuilt = seen[night]["rebuilt"]
    assert any(m.startswith("stg_orders: rebuilt") and reason in m for m in rebuilt), rebuilt


def test_rows_after_each_rebuild(nights):
    _, seen = nights
    assert seen["3 erasure"]["orders"] == {
        "A": (money("11"), money("11"), D2),
        "B": (money("20"), money("40"), D1),
        "D": (money("7"), money("7"), D2),
    }  # C (customer C3) gone although export D1 was staged before
    assert seen["3 erasure"]["events"] == {"E1": D1, "E2": D1}
    assert seen["4 fx change"]["orders"]["B"] == (money("20"), money("60"), D1)  # 20 * 3
    assert seen["5 late export"]["orders"]["F"] == (money("9"), money("9"), "2026-10-31")
    assert seen["6 re-delivered export"]["orders"]["A"] == (money("12"), money("12"), D2)
    # stg_events saw no change of its own on nights 4 and 5
    assert not any(m.startswith("stg_events") for m in seen["4 fx change"]["rebuilt"])
    assert seen["7 nothing new"]["rebuilt"] == []
    assert seen["7 nothing new"]["referees"] == {"R1": "C9"}
    assert seen["7 nothing new"]["orders"] == seen["6 re-delivered export"]["orders"]


def test_last_night_equals_a_full_refresh(nights, tmp_path):
    wh, _ = nights
    full = Warehouse.__new__(Warehouse)
    full.tmp, full.path = tmp_path, tmp_path / "warehouse.duckdb"
    wh.sql("CHECKPOINT")  # dbt-duckdb keeps the file open: flush its WAL before copying
    shutil.copy(wh.path, full.path)
    assert full.dbt("--full-refresh") == []
    for table in ("staging.stg_orders", "staging.stg_events"):
        query = f"SELECT * FROM {table} ORDER BY 1"
        assert wh.sql(query) == full.sql(query), table


def test_erasure_and_salt_reach_staged_rows(nights):
    _, seen = nights
    referee_erased, new_salt = seen["8 referee erased"], seen["9 new salt"]
    # every staging model drops erased customers: a new request rebuilds each one built
    # here (SELECT: not stg_surveys)
    assert {m.split(":")[0] for m in referee_erased["rebuilt"]} == {
        "stg_customers",
        "stg_events",
        "stg_orders",
        "stg_referrals",
    }
    assert referee_erased["referees"] == {"R1": None}
    assert [m.split(":")[0] for m in new_salt["rebuilt"]] == ["stg_customers", "stg_referrals"]
    con = duckdb.connect()
    expected = con.execute("SELECT sha256('another-salt' || 'a@x.com')").fetchone()[0]
    assert new_salt["email_hash"] == expected != referee_erased["email_hash"]


STAGED_TESTS = ["stg_orders.order_id_unique", "stg_orders.customer_id_in_stg_customers"]


def test_staged_tests_check_the_rows_the_last_build_staged(tmp_path):
    """`staged_unique` and `staged_relationships` (dbt_project/tests/generic/) check every
    row after a first build, and after an incremental night the rows of the exports it
    staged: a key staged tonight counted over the whole table (a row the merge should have
    replaced fails), a row staged tonight whose customer is unknown fails; rows staged on
    earlier nights are not checked again."""
    wh = Warehouse(tmp_path)

    def failures() -> dict[str, int]:
        found = dbt_test_failures(["stg_orders"], tmp_path, wh.path)
        return {name: found[name] for name in STAGED_TESTS}

    def order_copy(order_id: str, export_date: str, customer: str | None = None) -> None:
        wh.sql(
            "INSERT INTO staging.stg_orders SELECT * REPLACE (CAST(? AS DATE) AS "
            "source_export_date, coalesce(?, customer_id) AS customer_id) "
            "FROM staging.stg_orders WHERE order_id = ? LIMIT 1",
            [export_date, customer, order_id],
        )

    wh.export(D1)
    wh.eur(D1, "2")
    for customer in ("C1", "C2"):
        wh.customer(D1, customer, f"{customer.lower()}@x.com")
    wh.orders(
        ("A", "C1", "2026-10-01", 10, "USD", "completed", D1),
        ("B", "C2", "2026-10-02", 20, "USD", "completed", D1),
    )
    wh.dbt()
    state = "SELECT export_date::VARCHAR, in_last_build FROM staging.stg_orders__staged ORDER BY 1"
    assert wh.sql(state) == [(D1, True)]
    assert failures() == dict.fromkeys(STAGED_TESTS, 0)
    order_copy("B", D1)  # the first build staged every row: a duplicate anywhere fails
    assert failures()["stg_orders.order_id_unique"] == 1
    wh.sql(
        "CREATE OR REPLACE TABLE staging.stg_orders AS SELECT DISTINCT * FROM staging.stg_orders"
    )

    # Night 2: A changed, C new.
    wh.export(D2)
    wh.eur(D2, "2")
    wh.orders(
        ("A", "C1", "2026-10-01", 11, "USD", "completed", D2),
        ("C", "C2", "2026-10-03", 5, "USD", "completed", D2),
    )
    wh.dbt()
    assert wh.sql(state) == [(D1, False), (D2, True)]
    assert failures() == dict.fromkeys(STAGED_TESTS, 0)
    order_copy("B", D1, customer="C8")  # an earlier night's key and customer: not checked again
    assert failures() == dict.fromkeys(STAGED_TESTS, 0)
    order_copy("A", D1)  # a stale row of a key staged tonight: counted over the table
    order_copy("C", D2, customer="C9")  # staged tonight, unknown customer
    assert failures() == {
        "stg_orders.order_id_unique": 2,  # A (its row of D2 and the stale copy), C
        "stg_orders.customer_id_in_stg_customers": 1,  # the copy of C naming C9
    }
