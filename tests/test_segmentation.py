"""Segmentation: synthetic customers in well-separated groups with known feature values."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score

from pipelines.segment_spells import used_segment_ids, write_run
from pipelines.segmentation import (
    INCENTIVES,
    PROFILE_MEANS,
    PROSPECTS_ID,
    PROSPECTS_NAME,
    SegmentationConfig,
    run_segmentation,
    segment_customers,
    silhouettes,
)
from pipelines.segmentation.model import build_preprocessor
from pipelines.segmentation.segment import _prepare
from pipelines.segmentation.warm import PreviousRun, run_record
from pipelines.sql import transaction
from pipelines.warehouse_tables import create_python_owned_tables

# orders, avg order value, days since last order, tenure, nps, csat, referrals, reviews,
# shares, refund rate, discount share
GROUPS = {
    "champions": (20, 100, 10, 900, 9.5, 4.8, 5, 3, 4, 0.01, 0.05),
    "new": (1, 60, 15, 20, 8.0, 4.0, 0, 0, 0, 0.0, 0.10),
    "detractors": (2, 50, 400, 800, 3.0, 2.0, 0, 0, 0, 0.30, 0.10),
    "big_spenders": (5, 500, 60, 600, 8.0, 4.0, 0, 0, 0, 0.02, 0.02),
    "bargain": (6, 40, 45, 500, 7.5, 3.5, 0, 0, 0, 0.05, 0.45),
    "rich_detractors": (3, 400, 420, 850, 2.5, 1.8, 0, 0, 0, 0.25, 0.0),
}


def make_customers(sizes: dict[str, int], seed: int = 0, prefix: str = "C") -> pd.DataFrame:
    """One row per customer; `group` holds the true group. Noise is small (~5%)."""
    rng = np.random.default_rng(seed)
    frames = []
    start = 0
    for group, n in sizes.items():
        o, aov, days, tenure, nps, csat, refs, revs, shares, refund, disc = GROUPS[group]

        def jitter(v, n=n):
            return v * np.exp(rng.normal(0, 0.05, n))

        orders = np.maximum(1, np.round(jitter(o)))
        value = jitter(aov)
        tenure_days = np.round(jitter(tenure))
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": [f"{prefix}{i:06d}" for i in range(start, start + n)],
                    "group": group,
                    "orders_count": orders,
                    "frequency": orders - 1,
                    "net_revenue": orders * value,
                    "avg_order_value": value,
                    "days_since_last_order": np.round(jitter(days)),
                    "tenure_days": tenure_days,
                    "purchase_days_per_year": orders / np.maximum(tenure_days, 1) * 365,
                    "nps_avg": np.clip(nps + rng.normal(0, 0.2, n), 0, 10),
                    "csat_avg": np.clip(csat + rng.normal(0, 0.1, n), 1, 5),
                    "referrals_sent": np.round(jitter(refs)),
                    "referrals_converted": np.round(jitter(refs) / 2),
                    "reviews_posted": np.round(jitter(revs)),
                    "social_shares": np.round(jitter(shares)),
                    "refund_rate": np.clip(refund + rng.normal(0, 0.005, n), 0, 1),
                    "discount_share": np.clip(disc + rng.normal(0, 0.01, n), 0, 1),
                    "nps_class": np.where(
                        nps >= 9, "promoter", np.where(nps >= 7, "passive", "detractor")
                    ),
                    "advocate_type": "active" if refs else "none",
                    "churn_risk": "high" if days > 90 else "low",
                }
            )
        )
        start += n
    return pd.concat(frames, ignore_index=True)


def add_prospects(df: pd.DataFrame, n: int, prefix: str = "P") -> pd.DataFrame:
    numeric = [c for c in df.columns if df[c].dtype == np.float64]
    rows = pd.DataFrame({c: np.nan for c in numeric}, index=range(n))
    rows["customer_id"] = [f"{prefix}{i:06d}" for i in range(n)]
    rows["group"] = "prospects"
    rows["orders_count"] = 0.0
    rows["referrals_sent"] = 0.0
    rows["tenure_days"] = 30.0 + np.arange(n) % 7
    return pd.concat([df, rows], ignore_index=True)


def group_of(result, df: pd.DataFrame) -> pd.Series:
    """Map each true group to the (single) segment most of its customers got."""
    seg = result.assignments.set_index("customer_id")["segment_id"]
    merged = df.set_index("customer_id")["group"].to_frame().join(seg)
    return merged.groupby("group")["segment_id"].agg(lambda s: s.mode().iloc[0])


CFG = SegmentationConfig()
FOUR = {"champions": 300, "new": 400, "detractors": 350, "big_spenders": 250}


@pytest.fixture(scope="module")
def four_groups():
    df = add_prospects(make_customers(FOUR, seed=1), 120)
    return df, segment_customers(df, None, set(), CFG)


def test_prospects_are_a_fixed_segment_and_not_clustered(four_groups):
    df, result = four_groups
    a = result.assignments.merge(df[["customer_id", "group"]], on="customer_id")
    pros = a[a["group"] == "prospects"]
    assert len(pros) == 120
    assert set(pros["segment_id"]) == {"prospects"} and set(pros["segment_name"]) == {"Prospects"}
    assert (a.loc[a["group"] != "prospects", "segment_id"] != "prospects").all()
    assert "prospects" not in set(result.centroids["segment_id"])
    p = result.profiles.set_index("segment_id").loc["prospects"]
    assert p["customers"] == 120 and p["share"] == round(120 / 1420, 6)
    assert p["recommended_incentive"] == INCENTIVES["prospect"]
    assert p["avg_orders_count"] == 0.0 and np.isnan(p["avg_order_value"])
    assert "have not completed an order" in p["persona"]
    assert result.metadata["n_prospects"] == 120 and result.metadata["n_clustered"] == 1300


def test_frequency_null_means_prospect():
    df = make_customers({"champions": 100, "new": 100, "detractors": 100}, seed=3)
    df.loc[df.index[:5], "frequency"] = np.nan
    result = segment_customers(df, None, set(), CFG)
    ids = result.assignments.set_index("customer_id")["segment_id"]
    assert (ids.loc[df["customer_id"][:5]] == "prospects").all()
    assert (ids.loc[df["customer_id"][5:]] != "prospects").all()


def test_k_and_clusters_recover_the_groups(four_groups):
    df, result = four_groups
    meta = result.metadata
    assert meta["k"] == 4
    assert [row["k"] for row in meta["k_scan"]] == [3, 4, 5, 6, 7, 8]
    best = max(meta["k_scan"], key=lambda r: r["silhouette"])
    assert best["k"] == 4 and meta["silhouette"] == best["silhouette"] > 0.7
    assert 0 < meta["davies_bouldin"] < 0.5 and meta["guard_satisfied"] is True
    a = result.assignments.merge(df[["customer_id", "group"]], on="customer_id")
    a = a[a["group"] != "prospects"]
    assert adjusted_rand_score(a["group"], a["segment_id"]) == 1.0
    assert sorted(result.profiles["segment_id"]) == ["S01", "S02", "S03", "S04", "prospects"]
    # ids of a first run are given by size: S01 is the largest cluster
    sizes = meta["sizes"]
    assert sizes == {"S01": 400, "S02": 350, "S03": 300, "S04": 250, "prospects": 120}
    assert result.profiles["share"].sum() == pytest.approx(1.0, abs=1e-5)


def test_centroids_are_in_original_units(four_groups):
    df, result = four_groups
    seg = group_of(result, df)
    c = result.centroids.pivot(index="segment_id", columns="feature", values="value")
    champ = c.loc[seg["champions"]]
    assert champ["orders_count"] == pytest.approx(20, rel=0.05)
    assert champ["avg_order_value"] == pytest.approx(100, rel=0.05)
    assert champ["nps_avg"] == pytest.approx(9.5, abs=0.1)
    assert c.loc[seg["detractors"], "days_since_last_order"] == pytest.approx(400, rel=0.05)
    assert set(c.columns) == set(CFG.features)
    p = result.profiles.set_index("segment_id").loc[seg["big_spenders"]]
    assert p["avg_order_value"] == pytest.approx(500, rel=0.05)
    assert p["avg_net_revenue"] == pytest.approx(2500, rel=0.1)
    assert p["detractor_share"] == 0.0 and p["promoter_share"] == 0.0
    assert "250 customers (17.6%) with 5.0 orders" in p["persona"]


def test_names_and_incentives_follow_the_profile(four_groups):
    df, result = four_groups
    seg = group_of(result, df)
    prof = result.profiles.set_index("segment_id")
    expected = {
        "champions": ("Champion advocates", "advocate"),
        "new": ("New customers", "new"),
        "detractors": ("Dormant detractors", "detractor"),
        "big_spenders": ("Big spenders, quiet", "premium"),
    }
    for group, (name, incentive) in expected.items():
        assert prof.loc[seg[group], "segment_name"] == name
        assert prof.loc[seg[group], "recommended_incentive"] == INCENTIVES[incentive]
    assert "do not solicit referrals" in prof.loc[seg["detractors"], "recommended_incentive"]
    assert "welcome credit" in prof.loc[seg["new"], "recommended_incentive"]
    assert prof["segment_name"].is_unique
    names = result.assignments.drop_duplicates("segment_id").set_index("segment_id")
    assert names["segment_name"].to_dict() == prof["segment_name"].to_dict()


def test_equal_archetypes_get_unique_names():
    sizes = {"detractors": 300, "rich_detractors": 300, "champions": 300, "new": 300}
    result = segment_customers(make_customers(sizes, seed=4), None, set(), CFG)
    names = result.profiles["segment_name"].tolist()
    assert len(set(names)) == len(names) == 4
    dormant = sorted(n for n in names if n.startswith("Dormant detractors"))
    assert dormant == [
        "Dormant detractors (high order value)",
        "Dormant detractors (low order value)",
    ]


def test_min_share_guard_merges_a_tiny_group():
    sizes = {"champions": 1000, "new": 1000, "detractors": 1000, "bargain": 40}  # 1.3%
    df = make_customers(sizes, seed=5)
    result = segment_customers(df, None, set(), CFG)
    meta = result.metadata
    scan = {r["k"]: r for r in meta["k_scan"]}
    assert not scan[4]["accepted"] and scan[4]["min_share"] == round(40 / 3040, 6)
    assert scan[4]["silhouette"] > scan[3]["silhouette"]  # would have won without the guard
    assert meta["k"] == 3 and scan[3]["accepted"]
    assert min(meta["sizes"].values()) >= 0.03 * 3040
    seg = result.assignments.set_index("customer_id")["segment_id"]
    tiny = seg.loc[df.loc[df["group"] == "bargain", "customer_id"]]
    assert tiny.nunique() == 1 and meta["sizes"][tiny.iloc[0]] >= 1000


def test_no_k_satisfies_the_guard_falls_back_to_the_largest_smallest_cluster():
    from dataclasses import replace

    df = make_customers({"champions": 500, "new": 500, "detractors": 500}, seed=6)
    result = segment_customers(df, None, set(), replace(CFG, min_share=0.5, k_max=5))
    scan = result.metadata["k_scan"]
    assert [r["accepted"] for r in scan] == [False, False, False]
    assert result.metadata["k"] == 3 and result.metadata["guard_satisfied"] is False
    assert scan[0]["min_share"] == round(500 / 1500, 6) == max(r["min_share"] for r in scan)


def test_deterministic_and_independent_of_row_order(four_groups):
    df, result = four_groups
    again = segment_customers(df.sample(frac=1.0, random_state=7), None, set(), CFG)
    pd.testing.assert_frame_equal(result.assignments, again.assignments)
    pd.testing.assert_frame_equal(result.profiles, again.profiles)
    pd.testing.assert_frame_equal(result.centroids, again.centroids)
    assert result.metadata == again.metadata
    assert json.loads(json.dumps(result.metadata)) == result.metadata


def test_the_warehouse_frame_is_segmented_without_a_copy_and_left_as_it_was(four_groups):
    """Read from the warehouse, the features are text ids in order and DOUBLE columns: used
    as they are (a copy costs ~0.4 GB per million customers), and the caller's frame is not
    changed; other frames are copied, sorted and converted, with the same segments."""
    df, result = four_groups
    ordered = df.sort_values("customer_id").reset_index(drop=True)
    numbers = ordered.select_dtypes("number").columns
    ordered[numbers] = ordered[numbers].astype("float64")  # the warehouse read's DOUBLEs
    before = ordered.copy()
    assert _prepare(ordered, CFG) is ordered
    again = segment_customers(ordered, None, set(), CFG)
    pd.testing.assert_frame_equal(ordered, before)
    pd.testing.assert_frame_equal(result.assignments, again.assignments)
    shuffled = ordered.sample(frac=1.0, random_state=7)
    assert _prepare(shuffled, CFG)["customer_id"].tolist() == ordered["customer_id"].tolist()
    numbered = ordered.assign(customer_id=range(len(ordered)))
    assert _prepare(numbered, CFG)["customer_id"].tolist() == sorted(map(str, range(len(df))))


def test_decimal_money_columns_are_accepted(four_groups):
    df, result = four_groups
    dec = df.copy()
    for col in ("net_revenue", "avg_order_value"):
        dec[col] = [None if pd.isna(v) else Decimal(f"{v:.4f}") for v in df[col]]
    out = segment_customers(dec, None, set(), CFG)
    assert (
        adjusted_rand_score(result.assignments["segment_id"], out.assignments["segment_id"]) == 1.0
    )


def test_ids_are_stable_on_perturbed_data(four_groups):
    df, first = four_groups
    df2 = add_prospects(make_customers(FOUR, seed=2), 150)  # same customers, new noise
    second = segment_customers(df2, first.centroids, {"S01", "S02", "S03", "S04"}, CFG)
    both = first.assignments.merge(second.assignments, on="customer_id")
    assert (both["segment_id_x"] == both["segment_id_y"]).mean() >= 0.99
    assert second.metadata["matching"]["new_ids"] == []
    assert all(d < 0.5 for d in second.metadata["matching"]["matched"].values())


def test_new_group_gets_a_never_used_id(four_groups):
    df, first = four_groups
    sizes = {**FOUR, "bargain": 300}
    df2 = make_customers(sizes, seed=2)
    used = {"S01", "S02", "S03", "S04", "S07", "prospects"}  # S07: retired in an older run
    second = segment_customers(df2, first.centroids, used, CFG)
    assert second.metadata["k"] == 5
    seg1, seg2 = group_of(first, df), group_of(second, df2)
    for group in FOUR:
        assert seg2[group] == seg1[group]
    assert seg2["bargain"] == "S08"
    assert second.metadata["matching"]["new_ids"] == ["S08"]
    prof = second.profiles.set_index("segment_id")
    assert prof.loc["S08", "segment_name"] == "Bargain hunters"
    assert prof.loc["S08", "recommended_incentive"] == INCENTIVES["price"]


def test_a_vanished_segment_id_is_not_reused_for_a_different_cluster(four_groups):
    df, first = four_groups
    sizes = {"champions": 300, "new": 400, "detractors": 350, "bargain": 250}
    df2 = make_customers(sizes, seed=2)
    second = segment_customers(df2, first.centroids, set(first.centroids["segment_id"]), CFG)
    seg1, seg2 = group_of(first, df), group_of(second, df2)
    assert seg2["bargain"] not in set(seg1)  # big spenders' id is retired, not handed over
    assert seg2["bargain"] == "S05"
    assert [seg2[g] for g in ("champions", "new", "detractors")] == [
        seg1[g] for g in ("champions", "new", "detractors")
    ]


def test_previous_centroids_with_other_features_are_not_matched(four_groups):
    df, first = four_groups
    old = first.centroids[first.centroids["feature"] != "csat_avg"]  # older feature set
    second = segment_customers(df, old, {"S01", "S02", "S03", "S04"}, CFG)
    assert second.metadata["matching"]["previous_ignored"] is True
    assert second.metadata["matching"]["new_ids"] == ["S05", "S06", "S07", "S08"]


def test_too_few_distinct_customers_give_one_segment():
    df = make_customers({"new": 2}, seed=0)
    result = segment_customers(df, None, set(), CFG)
    assert result.metadata["k"] == 1 and result.metadata["silhouette"] is None
    assert set(result.assignments["segment_id"]) == {"S01"}


def test_only_prospects():
    df = add_prospects(make_customers({"new": 1}, seed=0).iloc[:0], 10)
    result = segment_customers(df, None, set(), CFG)
    assert result.metadata["k"] == 0 and result.centroids.empty
    assert result.profiles["segment_id"].tolist() == ["prospects"]


def test_config_from_the_segmentation_resource():
    """SEGMENT_* reach the config through the resource (tests/test_definitions.py reads
    them from the environment); the knobs it does not expose keep their defaults."""
    from pipelines.resources import SegmentationResource

    cfg = SegmentationResource(k_min=2, k_max=5, min_share=0.05, seed=7).config()
    assert (cfg.k_min, cfg.k_max, cfg.min_share, cfg.seed) == (2, 5, 0.05, 7)
    assert (cfg.n_init, cfg.sample_size, cfg.n_threads) == (4, 20_000, 2)
    assert SegmentationResource().config() == SegmentationConfig()
    warm = SegmentationResource(rescan_days=0, rescan_silhouette_drop=0.1).config()
    assert (warm.rescan_days, warm.rescan_silhouette_drop) == (0, 0.1)
    assert (cfg.rescan_days, cfg.rescan_silhouette_drop) == (28, 0.05)
    with pytest.raises(ValueError):
        SegmentationResource(rescan_days=-1).config()
    with pytest.raises(ValueError):
        SegmentationResource(k_min=6, k_max=4).config()


def test_silhouettes_match_sklearn():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    X[:200] += 4
    label_sets = [rng.integers(0, 3, 600), (X[:, 0] > 2).astype(int), np.r_[np.zeros(599), 1]]
    label_sets = [lab.astype(int) for lab in label_sets]
    ours = silhouettes(X, label_sets, chunk=64)
    assert ours == pytest.approx([silhouette_score(X, lab) for lab in label_sets], abs=1e-12)
    # blocks on 1 or 3 threads: the same sums in the same order, so the same bits
    assert silhouettes(X, label_sets, chunk=64, threads=1) == ours
    assert silhouettes(X, label_sets, chunk=64, threads=3) == ours


# ---------------------------------------------------------------- DuckDB round trip

FEATURE_COLUMNS = """customer_id VARCHAR, orders_count BIGINT, frequency BIGINT,
    net_revenue DECIMAL(18,4), avg_order_value DECIMAL(18,4), days_since_last_order BIGINT,
    tenure_days BIGINT, purchase_days_per_year DOUBLE, nps_avg DOUBLE, csat_avg DOUBLE,
    referrals_sent BIGINT, referrals_converted BIGINT, reviews_posted BIGINT,
    social_shares BIGINT, refund_rate DOUBLE, discount_share DOUBLE, nps_class VARCHAR,
    advocate_type VARCHAR, churn_risk VARCHAR"""


def load_features(con, df: pd.DataFrame, export_date: str) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(f"CREATE OR REPLACE TABLE marts.customer_features ({FEATURE_COLUMNS})")
    con.register("src", df.drop(columns="group"))
    con.execute("INSERT INTO marts.customer_features BY NAME SELECT * FROM src")
    con.unregister("src")
    con.execute(
        "INSERT INTO raw.exports (export_date, mode, folder) VALUES (?, 'full', ?)",
        [dt.date.fromisoformat(export_date), f"exports/{export_date}"],
    )


def snapshot(con) -> dict:
    tables = {
        "marts.customer_segments": "customer_id",
        "marts.segment_profiles": "segment_id",
        "history.segment_spells": "customer_id, valid_from",
        "history.segment_centroids": "as_of_date, segment_id, feature",
    }
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall() for t, k in tables.items()}


def spell_counts(con) -> list[tuple]:
    """(valid_from, valid_to, spells, segments) of history.segment_spells."""
    return con.execute(
        "SELECT valid_from, valid_to, count(*), count(DISTINCT segment_id) "
        "FROM history.segment_spells GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def test_run_segmentation_against_duckdb():
    con = duckdb.connect()
    create_python_owned_tables(con)
    df1 = add_prospects(make_customers(FOUR, seed=1), 50)
    load_features(con, df1, "2024-01-31")
    meta1 = run_segmentation(con, CFG)
    assert meta1["as_of_date"] == "2024-01-31" and meta1["k"] == 4
    assert json.loads(json.dumps(meta1)) == meta1

    # a re-run of the same as_of replaces that date's rows: identical tables
    first = snapshot(con)
    assert run_segmentation(con, CFG) == meta1
    assert snapshot(con) == first

    # next export: perturbed values plus a new group of customers
    df2 = add_prospects(make_customers({**FOUR, "bargain": 300}, seed=2), 60)
    load_features(con, df2, "2024-02-29")
    meta2 = run_segmentation(con, CFG)
    assert meta2["as_of_date"] == "2024-02-29" and meta2["k"] == 5
    assert meta2["matching"]["new_ids"] == ["S05"]

    # Nobody of the first run (1300 clustered + 50 prospects) moved or left: their 1350
    # spells stay open from 2024-01-31. The second run opens 310: the 300 bargain hunters
    # (new segment S05) and the 10 new prospects P000050..P000059.
    assert spell_counts(con) == [
        (dt.date(2024, 1, 31), None, 1350, 5),
        (dt.date(2024, 2, 29), None, 310, 2),
    ]
    opened = con.execute(
        "SELECT segment_id, count(*) FROM history.segment_spells "
        "WHERE valid_from = DATE '2024-02-29' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert opened == [("S05", 300), ("prospects", 10)]
    second = snapshot(con)
    assert run_segmentation(con, CFG) == meta2  # the same as_of again: nothing changes
    assert snapshot(con) == second
    cent = con.execute(
        "SELECT as_of_date, count(*) FROM history.segment_centroids GROUP BY 1 ORDER BY 1"
    ).fetchall()
    n_feat = len(CFG.features)
    assert cent == [(dt.date(2024, 1, 31), 4 * n_feat), (dt.date(2024, 2, 29), 5 * n_feat)]

    # marts hold only the latest run
    assert con.execute("SELECT DISTINCT as_of_date FROM marts.customer_segments").fetchall() == [
        (dt.date(2024, 2, 29),)
    ]
    assert con.execute("SELECT count(*) FROM marts.customer_segments").fetchone()[0] == 1660
    profile_cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
            "AND table_name = 'segment_profiles' ORDER BY ordinal_position"
        ).fetchall()
    ]
    assert set(PROFILE_MEANS) <= set(profile_cols) and "as_of_date" in profile_cols
    prof = con.execute(
        "SELECT segment_id, customers, share, segment_name, avg_orders_count "
        "FROM marts.segment_profiles ORDER BY segment_id"
    ).fetchall()
    assert [p[0] for p in prof] == ["S01", "S02", "S03", "S04", "S05", "prospects"]
    assert sum(p[1] for p in prof) == 1660
    assert sum(p[2] for p in prof) == pytest.approx(1.0, abs=1e-5)
    assert prof[-1][3] == "Prospects" and prof[-1][4] == 0.0
    assert prof[4][3] == "Bargain hunters"


def test_runs_where_nobody_moves_add_no_spells():
    """History grows with change: a run in which every customer keeps their segment adds no
    row, one that misses customers only closes their spells, re-running it changes nothing,
    and a run older than the newest in history is refused before clustering."""
    con = duckdb.connect()
    create_python_owned_tables(con)
    df = add_prospects(make_customers(FOUR, seed=1), 50)
    d1, d2, d3 = dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31)
    for day in (d1, d2):
        load_features(con, df, day.isoformat())
        run_segmentation(con, CFG)
    # 1300 clustered customers in S01..S04 and 50 prospects, open since d1; d2 added none
    assert spell_counts(con) == [(d1, None, 1350, 5)]

    # d3 misses the 50 prospects: their spells end at d3, no spell is added
    load_features(con, df[df["group"] != "prospects"], d3.isoformat())
    run_segmentation(con, CFG)
    assert spell_counts(con) == [(d1, d3, 50, 1), (d1, None, 1300, 4)]
    closed = snapshot(con)
    run_segmentation(con, CFG)  # d3 again: the undo reopens the 50, the rerun closes them
    assert snapshot(con) == closed

    con.execute("DELETE FROM raw.exports WHERE export_date = ?", [d3])  # as_of is d2 again
    with pytest.raises(ValueError, match="2024-03-31.*2024-02-29"):
        run_segmentation(con, CFG)
    assert snapshot(con) == closed


# ------------------------------------------------- segment history as spells, by hand

RUN_DATES = (dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1), dt.date(2026, 4, 1))
D1, D2, D3, D4 = RUN_DATES
# Each customer's segment in the four runs (None: absent from the run). a stays; b moves
# S1 -> S2 and returns to S1; c is absent from D2 and re-appears; d appears at D2 and is
# absent from D4; e moves at D4; f first appears at D4, in a new segment S3.
RUNS_BY_HAND = {
    "a": ("S1", "S1", "S1", "S1"),
    "b": ("S1", "S2", "S1", "S1"),
    "c": ("S2", None, "S2", "S2"),
    "d": (None, "S2", "S2", None),
    "e": ("S2", "S2", "S2", "S1"),
    "f": (None, None, None, "S3"),
}
# The segments' names per run: S1 is renamed at D3, which splits no spell.
NAMES_BY_HAND = {"S1": ("One", "One", "Uno", "Uno"), "S2": ("Two",) * 4, "S3": ("Three",) * 4}
# 18 per-run rows make 10 spells, [valid_from, valid_to)
SPELLS_BY_HAND = [
    ("a", "S1", D1, None),
    ("b", "S1", D1, D2),
    ("b", "S2", D2, D3),
    ("b", "S1", D3, None),
    ("c", "S2", D1, D2),
    ("c", "S2", D3, None),
    ("d", "S2", D2, D4),
    ("e", "S2", D1, D4),
    ("e", "S1", D4, None),
    ("f", "S3", D4, None),
]
# history.* as the release before spells created them
OLD_HISTORY_DDL = (
    """CREATE TABLE history.segment_assignments (
        as_of_date DATE NOT NULL, customer_id VARCHAR NOT NULL,
        segment_id VARCHAR NOT NULL, segment_name VARCHAR NOT NULL)""",
    """CREATE TABLE history.segment_centroids (
        as_of_date DATE NOT NULL, segment_id VARCHAR NOT NULL, segment_name VARCHAR NOT NULL,
        feature VARCHAR NOT NULL, value DOUBLE NOT NULL)""",
)


def assignments_of(run: int) -> pd.DataFrame:
    """Run `run`'s assignments (customer_id, segment_id, segment_name) from RUNS_BY_HAND."""
    rows = [
        (customer, segs[run], NAMES_BY_HAND[segs[run]][run])
        for customer, segs in RUNS_BY_HAND.items()
        if segs[run]
    ]
    return pd.DataFrame(rows, columns=["customer_id", "segment_id", "segment_name"])


def spells(con) -> list[tuple]:
    return con.execute(
        "SELECT customer_id, segment_id, valid_from, valid_to FROM history.segment_spells "
        "ORDER BY customer_id, valid_from"
    ).fetchall()


def written_run_by_run() -> duckdb.DuckDBPyConnection:
    """A new store in which the four runs were written one by one, as segmentation does."""
    con = duckdb.connect()
    create_python_owned_tables(con)
    for run, day in enumerate(RUN_DATES):
        with transaction(con):
            write_run(con, assignments_of(run), day)
    return con


def test_spells_written_run_by_run_are_the_hand_computed_ones():
    con = written_run_by_run()
    assert spells(con) == SPELLS_BY_HAND
    with transaction(con):  # D4 again: identical
        write_run(con, assignments_of(3), D4)
    assert spells(con) == SPELLS_BY_HAND
    # ids given out before D4 (f's S3 began at D4: free for a re-run of D4), and after it
    assert used_segment_ids(con, D4) == {"S1", "S2"}
    assert used_segment_ids(con, dt.date(2026, 5, 1)) == {"S1", "S2", "S3"}
    with pytest.raises(ValueError, match="2026-04-01.*2026-03-01"):
        write_run(con, assignments_of(2), D3)
    assert spells(con) == SPELLS_BY_HAND


def test_upgrade_turns_per_run_assignments_into_the_same_spells(caplog):
    """A store of the release before spells: its per-run history becomes the spells the
    writer gives for the same four runs, the old table is dropped, and it is logged."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA history")
    for ddl in OLD_HISTORY_DDL:
        con.execute(ddl)
    for run, day in enumerate(RUN_DATES):
        rows = assignments_of(run).assign(as_of_date=day)
        con.register("run_rows", rows)
        con.execute(
            "INSERT INTO history.segment_assignments BY NAME SELECT * FROM run_rows; "
            "INSERT INTO history.segment_centroids SELECT DISTINCT as_of_date, segment_id, "
            "segment_name, 'orders_count', 1.0 FROM run_rows"
        )
        con.unregister("run_rows")
    with caplog.at_level(logging.INFO):
        create_python_owned_tables(con)
    assert spells(con) == SPELLS_BY_HAND == spells(written_run_by_run())
    assert "18 rows over 4 runs" in caplog.text and "became 10 rows" in caplog.text
    tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'history'")
    # segment_runs is new, and empty: the old release recorded no run's k choice
    assert sorted(r[0] for r in tables.fetchall()) == [
        "segment_centroids",
        "segment_runs",
        "segment_spells",
    ]
    assert con.execute("SELECT count(*) FROM history.segment_runs").fetchone() == (0,)
    create_python_owned_tables(con)  # upgraded once: a no-op now
    assert spells(con) == SPELLS_BY_HAND


def test_dbt_names_the_prospects_segment_as_the_segmentation_does():
    """Prospects have no centroids, so segment_history takes their name from dbt vars."""
    project = Path(__file__).resolve().parent.parent / "dbt_project" / "dbt_project.yml"
    dbt_vars = yaml.safe_load(project.read_text())["vars"]
    assert dbt_vars["prospects_segment_id"] == PROSPECTS_ID
    assert dbt_vars["prospects_segment_name"] == PROSPECTS_NAME


def test_export_without_surveys_keeps_every_feature(four_groups):
    """nps/csat all NULL (no surveys file): filled with the neutral value, still clustered."""
    df = four_groups[0].copy()
    df["nps_avg"] = np.nan
    df["csat_avg"] = np.nan
    result = segment_customers(df, None, set(), CFG)
    assert result.metadata["k"] == 4
    feats = set(result.centroids["feature"])
    assert {"nps_avg", "csat_avg"} <= feats
    assert set(result.centroids.loc[result.centroids["feature"] == "nps_avg", "value"]) == {7.5}


# ------------------------------------------------------------------------ warm start

D_FIRST = dt.date(2024, 1, 31)
NEXT_DAY = D_FIRST + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def first_night():
    """Night 1: four groups, the full k scan (k=4), and its record as the next night
    reads it from history.segment_runs."""
    df = add_prospects(make_customers(FOUR, seed=1), 120)
    first = segment_customers(df, None, set(), CFG, None, D_FIRST)
    assert first.metadata["k_choice"] == "k_scan" and first.metadata["warm_start"] is None
    record = run_record(first.metadata, D_FIRST).iloc[0]
    previous = PreviousRun(
        D_FIRST, record["method"], int(record["k"]), record["last_scan_date"], record["silhouette"]
    )
    return first, previous


def night_two(sizes: dict[str, int], seed: int = 2) -> pd.DataFrame:
    return add_prospects(make_customers(sizes, seed=seed), 150)


def clustered_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The customers the model clusters, in customer_id order (as `_prepare` orders them)."""
    rows = df[(df["orders_count"] > 0) & df["frequency"].notna()]
    return rows.sort_values("customer_id").reset_index(drop=True)


def without_choice(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("k_choice", "warm_start", "last_k_scan")}


def test_night_two_warm_starts_from_the_previous_centroids(first_night, monkeypatch):
    """Same customers, new noise, the next day: the previous k is kept and KMeans starts
    from the previous centroids projected by tonight's preprocessor, once. The outcome is
    sklearn's KMeans called directly with that init on the same rows."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    from pipelines.segmentation import warm
    from pipelines.segmentation.model import build_preprocessor, to_original

    first, previous = first_night
    df = night_two(FOUR)
    inits = []

    class SpyKMeans(KMeans):
        def fit(self, X, y=None, sample_weight=None):
            inits.append((self.n_clusters, self.n_init, np.array(self.init, copy=True)))
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(warm, "KMeans", SpyKMeans)
    used = set(first.centroids["segment_id"])
    result = segment_customers(df, first.centroids, used, CFG, previous, NEXT_DAY)
    meta = result.metadata

    # independently: tonight's preprocessor (fitted on every clustered customer: fewer
    # than fit_sample_size), the previous centroids through it, sklearn's KMeans
    rows = clustered_rows(df)
    pre = build_preprocessor(CFG.features).fit(rows)
    X = pre.transform(rows)
    prev = first.centroids.pivot(index="segment_id", columns="feature", values="value")
    init = pre.transform(prev.sort_index()[list(CFG.features)])
    assert len(inits) == 1  # one KMeans, no k scan
    assert inits[0][:2] == (4, 1)
    np.testing.assert_array_equal(inits[0][2], init)
    km = KMeans(n_clusters=4, init=init, n_init=1, random_state=CFG.seed).fit(X)
    labels = km.predict(X)

    assert meta["k_choice"] == "warm_start" and meta["k"] == 4 and meta["k_scan"] == []
    assert meta["silhouette"] == round(silhouette_score(X, labels), 6) == 0.917882
    sizes = np.bincount(labels)
    assert meta["warm_start"] == {
        "from": "2024-01-31",
        "last_scan_date": "2024-01-31",
        "last_scan_silhouette": previous.last_scan_silhouette,
        "k": 4,
        "silhouette": meta["silhouette"],
        "min_share": round(sizes.min() / len(rows), 6),
        "accepted": True,
        "reason": None,
    }
    assert meta["last_k_scan"] == {"as_of_date": "2024-01-31", "silhouette": 0.920027}
    assert meta["guard_satisfied"] is True
    # each label of sklearn's model is one segment, with the previous id (init row j is
    # the previous segment j in id order), and its centroid in original units
    seg = result.assignments.set_index("customer_id").loc[rows["customer_id"], "segment_id"]
    prev_ids = list(prev.sort_index().index)
    for label in range(4):
        assert set(seg[labels == label]) == {prev_ids[label]}
    assert meta["matching"]["new_ids"] == []
    cent = result.centroids.pivot(index="segment_id", columns="feature", values="value")
    expected = to_original(pre, km.cluster_centers_, CFG.features).round(6)
    np.testing.assert_allclose(
        cent.loc[prev_ids, list(CFG.features)].to_numpy(), expected, rtol=1e-9, atol=1e-6
    )


def test_scan_when_the_warm_model_fails_the_guard(first_night):
    """Big spenders shrink to 20 of 1070 clustered customers (1.9% < 3%): the warm k=4
    keeps them as a cluster, so the night scans k and chooses as a first night would."""
    first, previous = first_night
    df = night_two({**FOUR, "big_spenders": 20})
    used = set(first.centroids["segment_id"])
    result = segment_customers(df, first.centroids, used, CFG, previous, NEXT_DAY)
    meta = result.metadata
    warm = meta["warm_start"]
    assert meta["k_choice"] == "k_scan" and warm["accepted"] is False
    assert (warm["k"], warm["min_share"]) == (4, round(20 / 1070, 6))
    assert warm["reason"] == "min share 0.018692 under 0.03"
    assert meta["k"] == 3 and len(meta["k_scan"]) == 6
    assert meta["last_k_scan"] == {"as_of_date": "2024-02-01", "silhouette": meta["silhouette"]}
    scanned = segment_customers(df, first.centroids, used, CFG)  # no record: the k scan
    pd.testing.assert_frame_equal(result.assignments, scanned.assignments)
    pd.testing.assert_frame_equal(result.centroids, scanned.centroids)
    assert without_choice(meta) == without_choice(scanned.metadata)


def test_scan_when_the_silhouette_drops_more_than_the_tolerance(first_night):
    """A fifth group arrives: the warm k=4 must absorb it, its silhouette falls from the
    last scan's 0.920027 to 0.772952 (> 0.05 lower), so the night scans and finds k=5.
    With a tolerance above the drop the warm model is kept."""
    from sklearn.metrics import silhouette_score

    first, previous = first_night
    df = night_two({**FOUR, "bargain": 300})
    used = set(first.centroids["segment_id"])
    result = segment_customers(df, first.centroids, used, CFG, previous, NEXT_DAY)
    meta = result.metadata
    assert meta["k_choice"] == "k_scan" and meta["k"] == 5
    assert meta["warm_start"]["accepted"] is False
    assert meta["warm_start"]["silhouette"] == 0.772952
    assert "under the last k scan's 0.920027 - 0.05" in meta["warm_start"]["reason"]
    assert meta["matching"]["new_ids"] == ["S05"]

    lenient = replace(CFG, rescan_silhouette_drop=0.2)
    kept = segment_customers(df, first.centroids, used, lenient, previous, NEXT_DAY)
    assert kept.metadata["k_choice"] == "warm_start" and kept.metadata["k"] == 4
    assert kept.metadata["silhouette"] == 0.772952
    # the recorded silhouette is sklearn's over every clustered customer (< sample_size)
    rows = clustered_rows(df)
    seg = kept.assignments.set_index("customer_id").loc[rows["customer_id"], "segment_id"]
    pre = build_preprocessor(CFG.features).fit(rows)
    assert round(silhouette_score(pre.transform(rows), seg.to_numpy()), 6) == 0.772952


def test_scan_when_the_last_scan_is_rescan_days_old(first_night):
    first, previous = first_night
    df = night_two(FOUR)
    used = set(first.centroids["segment_id"])
    day_27 = D_FIRST + dt.timedelta(days=27)
    day_28 = D_FIRST + dt.timedelta(days=28)
    warm = segment_customers(df, first.centroids, used, CFG, previous, day_27)
    assert warm.metadata["k_choice"] == "warm_start"
    scan = segment_customers(df, first.centroids, used, CFG, previous, day_28)
    assert scan.metadata["k_choice"] == "k_scan"
    assert scan.metadata["warm_start"] == {
        "from": "2024-01-31",
        "last_scan_date": "2024-01-31",
        "last_scan_silhouette": 0.920027,
        "k": None,
        "accepted": False,
        "reason": "last k scan 28 days ago (rescan_days=28)",
    }
    assert scan.metadata["last_k_scan"]["as_of_date"] == "2024-02-28"
    assert len(scan.metadata["k_scan"]) == 6


def test_rescan_days_zero_scans_every_night(first_night):
    first, previous = first_night
    df = night_two(FOUR)
    used = set(first.centroids["segment_id"])
    nightly = replace(CFG, rescan_days=0)
    result = segment_customers(df, first.centroids, used, nightly, previous, NEXT_DAY)
    assert result.metadata["k_choice"] == "k_scan"
    assert result.metadata["warm_start"]["reason"] == "last k scan 1 days ago (rescan_days=0)"
    scanned = segment_customers(df, first.centroids, used, nightly)  # today's behaviour
    pd.testing.assert_frame_equal(result.assignments, scanned.assignments)
    pd.testing.assert_frame_equal(result.profiles, scanned.profiles)
    assert without_choice(result.metadata) == without_choice(scanned.metadata)


def test_warm_start_config_is_validated():
    with pytest.raises(ValueError, match="rescan_days"):
        SegmentationConfig(rescan_days=-1)
    with pytest.raises(ValueError, match="rescan_silhouette_drop"):
        SegmentationConfig(rescan_silhouette_drop=-0.01)


def segment_runs(con) -> list[tuple]:
    return con.execute("SELECT * FROM history.segment_runs ORDER BY as_of_date").fetchall()


def test_nights_in_the_warehouse_record_scans_and_warm_starts():
    """Night 1 scans, nights 2 and 3 warm-start (the last scan carried forward), a re-run
    of night 3 writes the same tables; a store without the previous run's record (the
    release before warm starts) scans."""
    con = duckdb.connect()
    create_python_owned_tables(con)
    d1, d2, d3 = D_FIRST, NEXT_DAY, NEXT_DAY + dt.timedelta(days=1)
    for day, seed in ((d1, 1), (d2, 2), (d3, 3)):
        load_features(con, add_prospects(make_customers(FOUR, seed=seed), 50), day.isoformat())
        meta = run_segmentation(con, CFG)
    runs = segment_runs(con)
    sil1, sil2, sil3 = (r[3] for r in runs)
    assert runs == [
        (d1, "k_scan", 4, sil1, None, d1, sil1),
        (d2, "warm_start", 4, sil2, d1, d1, sil1),
        (d3, "warm_start", 4, sil3, d2, d1, sil1),
    ]
    assert sil1 == 0.920027 and meta["silhouette"] == sil3
    assert meta["warm_start"]["from"] == "2024-02-01"
    assert meta["last_k_scan"] == {"as_of_date": "2024-01-31", "silhouette": sil1}
    # stable ids: nobody moved, so no spell was opened after night 1
    assert spell_counts(con) == [(d1, None, 1350, 5)]

    third = {**snapshot(con), "runs": segment_runs(con)}
    assert run_segmentation(con, CFG) == meta  # night 3 again: reads only nights 1 and 2
    assert {**snapshot(con), "runs": segment_runs(con)} == third

    con.execute("DELETE FROM history.segment_runs WHERE as_of_date = ?", [d2])  # as if old
    legacy = run_segmentation(con, CFG)
    assert legacy["k_choice"] == "k_scan" and legacy["warm_start"] is None
    assert segment_runs(con)[-1] == (
        d3,
        "k_scan",
        4,
        legacy["silhouette"],
        None,
        d3,
        legacy["silhouette"],
    )
