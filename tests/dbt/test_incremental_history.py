"""The order history (int_customer_order_history) recomputes only the customers whose
orders changed, and rebuilds from all of stg_orders when what it read changed
(dbt_project/macros/incremental_history.sql).

Night by night on a small hand-made raw dataset (helpers of test_incremental_staging.py):
after every night the history, the two models that read it (int_customer_orders,
int_customer_cohort_12m) and customer_features equal a `--full-refresh` build of the same
data, row for row and in the same order; the customers recomputed and a few values are
worked out by hand.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.dbt import invoke_dbt_logged, money
from tests.dbt.test_incremental_staging import Warehouse

SELECT = ["--select", "+customer_features", "+int_customer_cohort_12m"]
# What a full refresh rebuilds for the comparison (staging is compared in its own test).
REBUILT = [
    "--select",
    "int_customer_order_history",
    "int_customer_orders",
    "int_customer_cohort_12m",
    "customer_features",
]
HISTORY = "intermediate.int_customer_order_history"
SORTED = ("intermediate.int_customer_orders", "intermediate.int_customer_cohort_12m")
COMPARED = (HISTORY, *SORTED, "marts.customer_features")
D1, D2, D3, D4, D5 = "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"


class Night(Warehouse):
    def dbt(self, *extra: str, select: list[str] = SELECT) -> list[str]:
        """Runs the models; returns what the order history logged."""
        said = invoke_dbt_logged(["run", *select, *extra], self.tmp, self.path)
        return [s for s in said if s.startswith("int_customer_order_history:")]

    def history(self) -> dict[str, tuple]:
        rows = self.sql(
            "SELECT customer_id, purchase_days, orders_count, net_revenue, "
            "first_purchase_date::VARCHAR, refunded_orders FROM " + HISTORY
        )
        return {r[0]: r[1:] for r in rows}

    def affected(self) -> list[str] | None:
        try:
            rows = self.sql(f"SELECT customer_id FROM {HISTORY}__affected ORDER BY 1")
        except duckdb.CatalogException:
            return None
        return [r[0] for r in rows]


def full_refresh_differences(wh: Night, tmp: Path, dbt_vars: str) -> list[str]:
    """Rebuilds the order history models with --full-refresh on a copy of the warehouse
    (in `tmp`, the same folder every night: dbt parses partially) and names every table
    that differs from the incremental one: its column types, its rows both ways (as
    EXCEPT ALL: counted), and the row order of the tables built sorted."""
    full = Night.__new__(Night)
    full.tmp, full.path = tmp, tmp / "full.duckdb"
    wh.sql("CHECKPOINT")  # dbt-duckdb keeps the file open: flush its WAL before copying
    shutil.copy(wh.path, full.path)
    full.dbt("--full-refresh", "--vars", dbt_vars, select=REBUILT)
    differ = []
    for table in COMPARED:
        describe = f"SELECT column_name, column_type FROM (DESCRIBE {table})"
        if wh.sql(describe) != full.sql(describe):
            differ.append(f"{table}: column types")
        ours, theirs = (w.sql(f"SELECT * FROM {table}") for w in (wh, full))
        if Counter(ours) - Counter(theirs) or Counter(theirs) - Counter(ours):
            differ.append(f"{table}: rows {sorted(ours)} != {sorted(theirs)}")
        elif table != HISTORY and ours != theirs:
            differ.append(f"{table}: row order")
    full.sql("CHECKPOINT")
    return differ


# The incremental nights whose merge is forced to a DELETE and INSERT
# (`replace_keys_small_batch` 1.0); the others take the default (a few customers out of
# five: a new table). Both merge paths are checked against a full refresh.
DELETE_INSERT_NIGHTS = {"3 moved order, as_of forward", "8 nothing new"}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory):
    """The warehouse after each night: what the history logged, its rows, the customers
    it recomputed, and the differences from a full refresh."""
    tmp = tmp_path_factory.mktemp("history")
    full = tmp_path_factory.mktemp("full")
    wh = Night(tmp)
    seen: dict[str, dict] = {}

    def night(name: str, **dbt_vars) -> None:
        small_batch = 1.0 if name in DELETE_INSERT_NIGHTS else 0.1
        given = json.dumps({"replace_keys_small_batch": small_batch, **dbt_vars})
        said = wh.dbt("--vars", given)
        seen[name] = {
            "said": said,
            "history": wh.history(),
            "affected": wh.affected(),
            "differences": full_refresh_differences(wh, full, given),
        }

    for customer in ("C1", "C2", "C3", "C4", "C5"):
        wh.customer(D1, customer, f"{customer.lower()}@x.com")
    # Night 1: first build (as_of D1). EUR = 2. E (C4) is dated 2026-11-03, after as_of.
    wh.export(D1)
    wh.eur(D1, "2")
    wh.orders(
        ("A", "C1", "2026-10-01", 10, "USD", "completed", D1),
        ("B", "C1", "2026-10-05", 20, "USD", "completed", D1),
        ("C", "C2", "2026-10-02", 5, "EUR", "completed", D1),
        ("D", "C3", "2026-10-03", 7, "USD", "completed", D1),
        ("E", "C4", "2026-11-03", 40, "USD", "completed", D1),
    )
    night("1 first build")
    # Night 2: a new order for C1, C's amount and D's status change, a new customer C5.
    wh.export(D2)
    wh.orders(
        ("F", "C1", "2026-10-20", 15, "USD", "completed", D2),
        ("C", "C2", "2026-10-02", 6, "EUR", "completed", D2),
        ("D", "C3", "2026-10-03", 7, "USD", "refunded", D2),
        ("G", "C5", "2026-11-02", 8, "USD", "completed", D2),
    )
    night("2 changed orders")
    # Night 3 (as_of D3): B moves from C1 to C2; E's day (2026-11-03) is now on or before as_of.
    wh.export(D3)
    wh.orders(("B", "C2", "2026-10-05", 20, "USD", "completed", D3))
    night("3 moved order, as_of forward")
    # Night 4: C5 erased (ingest records the request and deletes their raw rows).
    wh.sql("DELETE FROM raw.orders WHERE customer_id = 'C5'")
    wh.sql("DELETE FROM raw.customers WHERE customer_id = 'C5'")
    wh.export(D4)
    wh.sql(
        "INSERT INTO raw.erasure_requests (customer_id, _export_date, _line_number) "
        "VALUES ('C5', ?, 2)",
        [D4],
    )
    night("4 erasure")
    # Night 5: EUR = 3.
    wh.export(D5)
    wh.eur(D5, "3")
    night("5 fx change")
    # Night 6: as_of set back to 2026-10-15 (F, E after it).
    night("6 as_of back", as_of_date="2026-10-15")
    # Night 7: the var unset: as_of D5 again, F and E back in.
    night("7 as_of forward")
    # Night 8: nothing new.
    night("8 nothing new")
    return wh, seen


NIGHTS = [
    "1 first build",
    "2 changed orders",
    "3 moved order, as_of forward",
    "4 erasure",
    "5 fx change",
    "6 as_of back",
    "7 as_of forward",
    "8 nothing new",
]


@pytest.mark.parametrize("night", NIGHTS)
def test_every_night_equals_a_full_refresh(nights, night):
    _, seen = nights
    assert seen[night]["differences"] == []


def test_incremental_nights_recompute_the_affected_customers(nights):
    _, seen = nights
    first = seen["1 first build"]
    assert first["said"] == [] and first["affected"] is None  # a plain full build
    # (purchase days, orders, net revenue, first purchase, refunded); C4's E is after as_of
    assert first["history"] == {
        "C1": (2, 2, money("30"), "2026-10-01", 0),
        "C2": (1, 1, money("10"), "2026-10-02", 0),  # 5 EUR * 2
        "C3": (1, 1, money("7"), "2026-10-03", 0),
    }
    second = seen["2 changed orders"]
    assert second["said"][0].startswith(
        "int_customer_order_history: incremental: the customers of the orders staged after "
        f"{D1} or dated after {D1}"
    )
    # F (C1), C (C2), D (C3), G (C5): staged tonight; G is also dated in (D1, D2]
    assert second["affected"] == ["C1", "C2", "C3", "C5"]
    assert second["history"] == {
        "C1": (3, 3, money("45"), "2026-10-01", 0),  # 10 + 20 + 15
        "C2": (1, 1, money("12"), "2026-10-02", 0),  # 6 EUR * 2
        "C3": (None, None, None, None, 1),  # refunded: an order, no purchase
        "C5": (1, 1, money("8"), "2026-11-02", 0),
    }
    third = seen["3 moved order, as_of forward"]
    # B staged tonight for C2, its D1 version in raw names C1; E dated in (D2, D3]
    assert third["affected"] == ["C1", "C2", "C4"]
    assert third["history"]["C1"] == (2, 2, money("25"), "2026-10-01", 0)  # A + F
    assert third["history"]["C2"] == (2, 2, money("32"), "2026-10-02", 0)  # C 12 + B 20
    assert third["history"]["C4"] == (1, 1, money("40"), "2026-11-03", 0)
    assert seen["8 nothing new"]["affected"] == []
    assert seen["8 nothing new"]["history"] == seen["7 as_of forward"]["history"]


def test_merge_path_follows_the_share_of_affected_customers(nights):
    _, seen = nights
    # night 2: 4 affected (C1, C2, C3, C5) of 3 rows, above the default share: a new table
    assert seen["2 changed orders"]["said"][1:] == [
        "int_customer_order_history: 4 customers recomputed",
        "int_customer_order_history: merged by a new table",
    ]
    # night 3: 3 affected of 4 rows, with every merge a DELETE and INSERT (share 1.0)
    assert seen["3 moved order, as_of forward"]["said"][1:] == [
        "int_customer_order_history: 3 customers recomputed",
        "int_customer_order_history: merged by delete and insert",
    ]


@pytest.mark.parametrize(
    ("night", "reason"),
    [
        ("4 erasure", "stg_orders was rebuilt"),
        ("5 fx change", "fx rates"),
        ("6 as_of back", "the as-of date went back from 2026-11-05 to 2026-10-15"),
    ],
)
def test_rebuilds_when_what_it_read_changed(nights, night, reason):
    _, seen = nights
    said = seen[night]["said"]
    assert said[0].startswith("int_customer_order_history: rebuilt from all of stg_orders: ")
    assert reason in said[0]
    assert seen[night]["affected"] is None


def test_rows_after_each_rebuild(nights):
    _, seen = nights
    assert "C5" not in seen["4 erasure"]["history"]  # erased: gone
    assert seen["5 fx change"]["history"]["C2"][2] == money("38")  # 6 EUR * 3 + 20
    back = seen["6 as_of back"]["history"]
    assert back["C1"] == (1, 1, money("10"), "2026-10-01", 0)  # F (2026-10-20) after as_of
    assert "C4" not in back
    forward = seen["7 as_of forward"]
    # F and E are dated in (2026-10-15, D5]
    assert forward["said"][0].endswith("or dated after 2026-10-15")
    assert forward["affected"] == ["C1", "C4"]
    assert forward["history"] == seen["5 fx change"]["history"]
