"""A small hand-made raw dataset for the dbt project's tests.

Expected values derived from it by hand are asserted in test_dbt_build.py. As-of date =
2026-11-21 (the newest of the two exports). `build_sample_warehouse(path)` creates the
Python-owned tables (pipelines.warehouse_tables) and inserts the rows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.segment_spells import write_run
from pipelines.warehouse_tables import create_python_owned_tables

OLD = "2026-11-20"  # older export
NEW = "2026-11-21"  # newest export = as_of

ROWS: dict[str, tuple[list[str], list[tuple]]] = {
    "exports": (
        ["export_date", "mode", "folder", "files"],
        [(OLD, "full", f"/exports/{OLD}", "{}"), (NEW, "incremental", f"/exports/{NEW}", "{}")],
    ),
    "customers": (
        [
            "customer_id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "signup_date",
            "country",
            "acquisition_channel",
            "marketing_opt_in",
            "updated_at",
            "_export_date",
            "_line_number",
        ],
        [
            # older version of C1 (country CA) loses to the newest export
            (
                "C1",
                "a@x.com",
                "Ann",
                "A",
                "+100",
                "2024-01-10",
                "CA",
                "organic",
                True,
                None,
                OLD,
                2,
            ),
            (
                "C1",
                "a@x.com",
                "Ann",
                "A",
                "+100",
                "2024-01-10",
                "US",
                "organic",
                True,
                None,
                NEW,
                2,
            ),
            ("C2", "b@x.com", "Bob", "B", None, "2025-06-01", "DE", "referral", None, None, NEW, 3),
            (
                "C3",
                "c@x.com",
                "Cid",
                "C",
                None,
                "2026-10-01",
                "US",
                "paid_search",
                False,
                None,
                NEW,
                4,
            ),
            ("C4", "d@x.com", "Dee", "D", None, "2025-01-01", "US", "organic", True, None, NEW, 5),
            ("C5", "e@x.com", "Eve", "E", None, "2025-01-01", "FR", "email", True, None, NEW, 6),
            ("C6", "f@x.com", "Fay", "F", None, "2026-09-15", "US", "social", False, None, NEW, 7),
        ],
    ),
    "erasure_requests": (
        ["customer_id", "email", "_export_date", "_line_number"],
        [(None, " D@X.com", NEW, 2)],  # C4, matched by normalised email
    ),
    "fx_rates": (
        ["currency", "rate_to_base", "_export_date", "_line_number"],
        [("EUR", 1.2, OLD, 2), ("EUR", 1.1, NEW, 2), ("USD", 2.0, NEW, 3)],
    ),
    "orders": (
        [
            "order_id",
            "customer_id",
            "order_date",
            "amount",
            "currency",
            "status",
            "discount_amount",
            "_export_date",
            "_line_number",
        ],
        [
            ("O1", "C1", "2024-02-01 10:00:00", 100, None, None, 10, NEW, 2),
            ("O2", "C1", "2024-02-01 18:00:00", 50, "USD", "completed", None, NEW, 3),
            ("O3", "C1", "2025-03-01 09:00:00", 70, "EUR", "completed", None, OLD, 2),
            ("O3", "C1", "2025-03-01 09:00:00", 80, "EUR", "completed", None, NEW, 4),
            ("O4", "C1", "2026-09-01 09:00:00", 40, "USD", "refunded", None, NEW, 5),
            ("O5", "C1", "2026-10-01 09:00:00", 0, "USD", "completed", None, NEW, 6),
            ("O6", "C1", "2026-11-22 09:00:00", 999, "USD", "completed", None, NEW, 7),
            ("O7", "C1", "2026-05-01 09:00:00", 60, "USD", "cancelled", None, NEW, 8),
            ("O10", "C2", "2025-06-10 12:00:00", 200, "USD", "completed", None, NEW, 9),
            ("O11", "C2", "2026-06-10 12:00:00", 30, "USD", "completed", None, NEW, 10),
            ("O12", "C2", "2025-06-05 23:00:00", 10, "USD", "completed", None, NEW, 11),
            ("O40", "C4", "2026-01-01 12:00:00", 500, "USD", "completed", None, NEW, 12),
            ("O50", "C5", "2025-01-10 12:00:00", 30, "USD", "completed", None, NEW, 13),
            ("O51", "C5", "2025-01-20 12:00:00", 30, "USD", "completed", None, NEW, 14),
            ("O52", "C5", "2025-02-01 12:00:00", 40, "USD", "completed", None, NEW, 15),
            ("O60", "C6", "2026-10-01 12:00:00", 25, "USD", "completed", None, NEW, 16),
            ("O61", "C6", "2026-10-21 12:00:00", 35, "USD", "completed", None, NEW, 17),
        ],
    ),
    "referrals": (
        [
            "referral_id",
            "referrer_customer_id",
            "referee_email",
            "referee_customer_id",
            "sent_at",
            "channel",
            "status",
            "converted_at",
            "reward_referrer_amount",
            "reward_referee_amount",
            "reward_currency",
            "_export_date",
            "_line_number",
        ],
        [
            # attributed: C1 -> C2
            (
                "R1",
                "C1",
                "b@x.com",
                "C2",
                "2025-06-01 08:00:00",
                "email",
                "converted",
                "2025-06-05 08:00:00",
                20,
                10,
                None,
                NEW,
                2,
            ),
            # duplicate conversion of C2 (later converted_at)
            (
                "R2",
                "C1",
                "b@x.com",
                "C2",
                "2025-06-02 08:00:00",
                "link",
                "converted",
                "2025-06-07 08:00:00",
                20,
                10,
                None,
                NEW,
                3,
            ),
            # self-referral by normalised email
            (
                "R3",
                "C1",
                " A@X.com",
                None,
                "2026-01-01 08:00:00",
                "email",
                "sent",
                None,
                None,
                None,
                None,
                NEW,
                4,
            ),
            # self-referral by customer id
            (
                "R4",
                "C6",
                None,
                "C6",
                "2026-10-02 08:00:00",
                "link",
                "converted",
                "2026-10-03 08:00:00",
                5,
                5,
                None,
                NEW,
                5,
            ),
            # counted, not converted
            (
                "R5",
                "C1",
                "friend@y.com",
                None,
                "2026-11-01 08:00:00",
                "email",
                "sent",
                None,
                None,
                None,
                None,
                NEW,
                6,
            ),
            # attributed: C5 -> C3, reward in EUR (15 * 1.1 = 16.5)
            (
                "R6",
                "C5",
                "c@x.com",
                "C3",
                "2026-10-01 08:00:00",
                "social",
                "converted",
                "2026-10-05 08:00:00",
                15,
                None,
                "EUR",
                NEW,
                7,
            ),
            # sent after as_of: excluded
            (
                "R7",
                "C1",
                "g@y.com",
                None,
                "2026-11-25 08:00:00",
                "email",
                "sent",
                None,
                None,
                None,
                None,
                NEW,
                8,
            ),
            # referrer erased: removed
            (
                "R8",
                "C4",
                "e@x.com",
                "C5",
                "2025-01-02 08:00:00",
                "email",
                "converted",
                "2025-01-03 08:00:00",
                20,
                10,
                None,
                NEW,
                9,
            ),
            # referee erased: counted as sent, not converted
            (
                "R9",
                "C5",
                "d@x.com",
                "C4",
                "2025-02-02 08:00:00",
                "email",
                "converted",
                "2025-02-03 08:00:00",
                20,
                10,
                None,
                NEW,
                10,
            ),
        ],
    ),
    "surveys": (
        [
            "response_id",
            "customer_id",
            "responded_at",
            "nps",
            "csat",
            "_export_date",
            "_line_number",
        ],
        [
            ("S1", "C1", "2026-01-01 00:00:00", 10, 5, NEW, 2),
            ("S2", "C1", "2026-06-01 00:00:00", 6, None, NEW, 3),
            ("S3", "C1", "2026-11-25 00:00:00", 9, None, NEW, 4),  # after as_of
            ("S4", "C2", "2026-03-01 00:00:00", 9, 4, NEW, 5),
            ("S5", "C4", "2026-03-01 00:00:00", 9, 4, NEW, 6),  # erased
        ],
    ),
    "events": (
        ["event_id", "customer_id", "occurred_at", "event_type", "_export_date", "_line_number"],
        [
            ("E1", "C1", "2026-05-01 10:00:00", "review_posted", NEW, 2),
            ("E2", "C1", "2025-11-21 10:00:00", "social_share", NEW, 3),  # 365 days ago: out
            ("E3", "C1", "2025-11-22 10:00:00", "social_share", NEW, 4),  # 364 days ago: in
            ("E4", "C6", "2026-11-01 10:00:00", "social_share", NEW, 5),
            ("E5", "C3", "2026-11-01 10:00:00", "email_open", NEW, 6),
        ],
    ),
    "marketing_spend": (
        ["month", "channel", "spend", "new_customers", "_export_date", "_line_number"],
        [
            ("2026-10-01", "paid_search", 1000, 10, NEW, 2),
            ("2026-11-01", "paid_search", 400, 5, OLD, 2),
            ("2026-11-01", "paid_search", 500, 5, NEW, 3),
        ],
    ),
    "referral_program_costs": (
        ["month", "cost", "_export_date", "_line_number"],
        [("2026-10-01", 100, NEW, 2), ("2026-11-01", 50, NEW, 3), ("2026-12-01", 999, NEW, 4)],
    ),
}

SEGMENTS = [  # (customer_id, segment_id, segment_name)
    ("C1", "seg_a", "Champion advocates"),
    ("C2", "seg_a", "Champion advocates"),
    ("C5", "seg_b", "At risk"),
    ("C6", "seg_b", "At risk"),
    ("C3", "prospects", "Prospects"),
]

PREVIOUS_RUN = "2026-10-21"  # the segmentation run before this one
HISTORY = [  # (as_of_date, customer_id, segment_id): each run's assignments
    (PREVIOUS_RUN, "C1", "seg_b"),
    (PREVIOUS_RUN, "C2", "seg_a"),
    (PREVIOUS_RUN, "C5", "seg_b"),
    (PREVIOUS_RUN, "C4", "seg_a"),  # erased later: dropped
] + [(NEW, c, s) for c, s, _ in SEGMENTS]
# Each run's clustered segments and their names (prospects are not clustered: no centroid)
CENTROIDS = [  # (as_of_date, segment_id, segment_name, feature, value)
    (run, s, n, "orders_count", 1.0)
    for run in (PREVIOUS_RUN, NEW)
    for s, n in (("seg_a", "Champion advocates"), ("seg_b", "At risk"))
]


def write_history(con: duckdb.DuckDBPyConnection) -> None:
    """HISTORY's runs written as the segmentation writes them: spells, then centroids."""
    for run in sorted({r[0] for r in HISTORY}):
        assigned = pd.DataFrame(
            [(c, s) for d, c, s in HISTORY if d == run], columns=["customer_id", "segment_id"]
        )
        write_run(con, assigned, date.fromisoformat(run))
    con.executemany("INSERT INTO history.segment_centroids VALUES (?, ?, ?, ?, ?)", CENTROIDS)


def build_sample_warehouse(path: str | Path) -> None:
    con = duckdb.connect(str(path))
    try:
        create_python_owned_tables(con)
        for table, (cols, rows) in ROWS.items():
            placeholders = ", ".join("?" for _ in cols)
            col_list = ", ".join(f'"{c}"' for c in cols)
            con.executemany(f"INSERT INTO raw.{table} ({col_list}) VALUES ({placeholders})", rows)
        con.executemany(
            "INSERT INTO marts.customer_segments VALUES (?, ?, ?, ?)",
            [(c, s, n, NEW) for c, s, n in SEGMENTS],
        )
        write_history(con)
    finally:
        con.close()


if __name__ == "__main__":
    import sys

    build_sample_warehouse(sys.argv[1])
