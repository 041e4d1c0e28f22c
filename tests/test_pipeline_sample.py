"""The nightly job on generated exports: determinism, segment stability, recovery, lifetimes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from pipelines.sample import generate_next_day
from tests.pipeline_runner import (
    MART_TABLES,
    SAMPLE_AS_OF,
    SAMPLE_CUSTOMERS,
    SAMPLE_SEED,
    copy_night,
    copy_warehouse,
    failure_messages,
    run_job,
    store_of,
    table_bytes,
)


@pytest.fixture(scope="module")
def runs(sample_night, tmp_path_factory):
    """Run 1 (the session's `sample_night`) and run 2 on the same export, then run 3 after
    a next-day export."""
    root = tmp_path_factory.mktemp("sample")
    wh = copy_night(sample_night, root)
    exports = root / "exports"
    snapshots = {"first": sample_night / "warehouse.duckdb"}
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    snapshots["second"] = root / "second" / "warehouse.duckdb"
    snapshots["second"].parent.mkdir()
    copy_warehouse(wh, snapshots["second"])
    generate_next_day(exports, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, as_of=SAMPLE_AS_OF)
    result = run_job(exports, wh)
    assert result.success, failure_messages(result)
    snapshots["next_day"] = wh
    snapshots["exports"] = exports
    return snapshots


def test_rerun_on_the_same_exports_gives_identical_marts(runs):
    for table in MART_TABLES:
        first = table_bytes(runs["first"], f"marts.{table}")
        if table != "segment_migrations":  # needs two as-of dates
            assert first.count(b"\n") > 1, f"marts.{table} is empty"
        assert first == table_bytes(runs["second"], f"marts.{table}"), table


def test_next_day_merged_into_staging_equals_a_full_refresh(runs, tmp_path):
    """The next day's staging was merged (incremental); a full refresh of the same
    warehouse from the launchpad config gives the same staging rows and the same marts."""
    wh = tmp_path / "warehouse.duckdb"
    copy_warehouse(runs["next_day"], wh)
    con = duckdb.connect(str(store_of(wh)), read_only=True)
    try:
        staged = con.execute("SELECT count(*) FROM staging.stg_orders__staged").fetchone()[0]
        before = {
            t: sorted(con.execute(f"SELECT * FROM staging.{t}").fetchall())
            for t in ("stg_customers", "stg_orders", "stg_referrals", "stg_events")
        }
    finally:
        con.close()
    assert staged == 2  # both exports recorded: the second night merged
    refresh = {"ops": {"dbt_customer_features": {"config": {"full_refresh": True}}}}
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        result = run_job(runs["exports"], wh, instance=instance, run_config=refresh)
        assert result.success, failure_messages(result)
        said = " ".join(r.user_message for r in instance.all_logs(result.run_id))
    assert "--full-refresh" in said
    con = duckdb.connect(str(store_of(wh)), read_only=True)
    try:
        for table, rows in before.items():
            assert sorted(con.execute(f"SELECT * FROM staging.{table}").fetchall()) == rows
    finally:
        con.close()
    for table in MART_TABLES:
        assert table_bytes(wh, f"marts.{table}") == table_bytes(
            runs["next_day"], f"marts.{table}"
        ), table


def test_next_day_records_migrations(runs):
    con = duckdb.connect(str(runs["next_day"]), read_only=True)
    try:
        moved, total, pairs = con.execute(
            "SELECT sum(customers) FILTER (WHERE is_migration), sum(customers), "
            "count(DISTINCT (from_as_of_date, to_as_of_date)) FROM marts.segment_migrations "
            "WHERE from_segment_id <> '(none)'"
        ).fetchone()
    finally:
        con.close()
    assert pairs == 1
    assert total == SAMPLE_CUSTOMERS  # customers of the first day (new ones come from '(none)')
    assert 0 < moved <= 0.1 * SAMPLE_CUSTOMERS


def segments(warehouse: Path) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT customer_id, segment_id FROM marts.customer_segments ORDER BY 1"
        ).df()
    finally:
        con.close()


def test_next_day_keeps_segment_ids(runs):
    before = segments(runs["first"]).set_index("customer_id")["segment_id"]
    after = segments(runs["next_day"]).set_index("customer_id")["segment_id"]
    common = before.index.intersection(after.index)
    assert len(common) == SAMPLE_CUSTOMERS
    kept = (before[common] == after[common]).mean()
    assert kept >= 0.90, f"only {kept:.1%} kept their segment_id"


def test_segment_ids_are_never_reused_for_another_centroid(runs):
    con = duckdb.connect(str(store_of(runs["next_day"])), read_only=True)
    try:
        # Each id keeps one name-independent identity: its centroids on both days are closer
        # to each other than to any other id's centroid of the other day.
        cents = con.execute(
            "SELECT as_of_date, segment_id, feature, value FROM history.segment_centroids"
        ).df()
    finally:
        con.close()
    wide = cents.pivot_table(index=["as_of_date", "segment_id"], columns="feature", values="value")
    days = sorted(wide.index.get_level_values(0).unique())
    assert len(days) == 2
    old, new = wide.loc[days[0]], wide.loc[days[1]]
    scale = pd.concat([old, new]).std().replace(0, 1)
    for sid in set(old.index) & set(new.index):
        dist = (((old - new.loc[sid]) / scale) ** 2).sum(axis=1) ** 0.5
        assert dist.idxmin() == sid, f"{sid} moved to another cluster's place"


def test_segments_recover_the_behaviour_groups(runs):
    truth = pd.read_csv(runs["exports"] / "_ground_truth" / f"{SAMPLE_AS_OF}.csv", dtype=str)
    seg = segments(runs["first"])
    merged = truth.merge(seg, on="customer_id")
    assert len(merged) == SAMPLE_CUSTOMERS
    clustered = merged[merged["behaviour_group"] != "prospects"]
    ari = adjusted_rand_score(clustered["behaviour_group"], clustered["segment_id"])
    print(f"adjusted Rand index (clustered customers): {ari:.3f}")
    assert ari >= 0.7
    # prospects are exactly the customers without a completed order
    prospects = merged[merged["segment_id"] == "prospects"]
    assert set(prospects["behaviour_group"]) <= {"prospects"}


def test_purchase_columns_equal_lifetimes(runs):
    from lifetimes.utils import summary_data_from_transaction_data

    con = duckdb.connect(str(store_of(runs["first"])), read_only=True)
    try:
        # Completed orders up to as_of in base currency, read from raw independently of dbt.
        tx = con.execute(
            """
            SELECT o.customer_id, CAST(o.order_date AS DATE) AS day,
                   CAST(o.amount * coalesce(f.rate_to_base, 1) AS DOUBLE) AS amount
            FROM raw.orders o
            LEFT JOIN raw.fx_rates f ON f.currency = o.currency
            WHERE coalesce(o.status, 'completed') = 'completed'
              AND CAST(o.order_date AS DATE) <= DATE '2026-11-21'
            """
        ).df()
        ours = (
            con.execute(
                'SELECT customer_id, frequency, recency, "T", '
                "CAST(monetary_value AS DOUBLE) AS monetary_value FROM marts.customer_features "
                "WHERE frequency IS NOT NULL ORDER BY customer_id"
            )
            .df()
            .set_index("customer_id")
        )
    finally:
        con.close()
    tx["day"] = pd.to_datetime(tx["day"])
    ref = summary_data_from_transaction_data(
        tx,
        "customer_id",
        "day",
        monetary_value_col="amount",
        observation_period_end=pd.Timestamp(SAMPLE_AS_OF),
        freq="D",
    ).sort_index()
    assert list(ours.index) == list(ref.index)
    for col in ("frequency", "recency", "T"):
        assert (ours[col].astype(int) == ref[col].astype(int)).all(), col
    diff = (ours["monetary_value"] - ref["monetary_value"]).abs().max()
    assert diff < 1e-3, f"monetary_value differs by up to {diff}"


def test_next_day_warm_starts_from_the_first_night(runs):
    """The first night scans k (its re-run, the second run, writes the same record); the
    next day keeps k and starts from the first night's centroids, the last scan carried."""
    first = table_bytes(store_of(runs["first"]), "history.segment_runs")
    assert first == table_bytes(store_of(runs["second"]), "history.segment_runs")
    con = duckdb.connect(str(store_of(runs["next_day"])), read_only=True)
    try:
        rows = con.execute("SELECT * FROM history.segment_runs ORDER BY as_of_date").fetchall()
        k_next = con.execute(
            "SELECT count(DISTINCT segment_id) FROM history.segment_centroids WHERE as_of_date = ?",
            [SAMPLE_AS_OF + dt.timedelta(days=1)],
        ).fetchone()[0]
    finally:
        con.close()
    (d1, method1, k1, sil1, from1, scan1, scan_sil1), second = rows
    assert (d1, method1, from1, scan1, scan_sil1) == (SAMPLE_AS_OF, "k_scan", None, d1, sil1)
    assert second[:3] == (SAMPLE_AS_OF + dt.timedelta(days=1), "warm_start", k1)
    assert second[4:] == (SAMPLE_AS_OF, SAMPLE_AS_OF, sil1)
    assert second[3] >= sil1 - 0.05 and k_next == k1
