"""Tests of the sample CRM export generator (pipelines/sample.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import sample
from pipelines.schemas import (
    ACQUISITION_CHANNELS,
    EVENT_TYPES,
    ORDER_STATUSES,
    REFERRAL_STATUSES,
    TABLES,
)

AS_OF = date(2026, 11, 21)
N = 3000
SEED = 7
FILES = [f"{t}.csv" for t in sample.EXPORT_TABLES]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    folder = sample.generate_export(out, N, seed=SEED, as_of=AS_OF)
    assert folder == out / "2026-11-21"
    return out


@pytest.fixture(scope="module")
def export(out_dir: Path) -> Path:
    return out_dir / AS_OF.isoformat()


def read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{table}.csv", dtype=str)


@pytest.fixture(scope="module")
def truth(out_dir: Path) -> pd.Series:
    gt = pd.read_csv(out_dir / "_ground_truth" / "2026-11-21.csv", dtype=str)
    return gt.set_index("customer_id")["behaviour_group"]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a = sample.generate_export(tmp_path / "a", 800, seed=3, as_of=AS_OF)
    b = sample.generate_export(tmp_path / "b", 800, seed=3, as_of=AS_OF)
    c = sample.generate_export(tmp_path / "c", 800, seed=4, as_of=AS_OF)
    files_a, files_b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert sorted(files_a) == sorted(
        [f"2026-11-21/{f}" for f in [*FILES, "manifest.json"]] + ["_ground_truth/2026-11-21.csv"]
    )
    assert files_a == files_b
    assert (a / "orders.csv").read_bytes() != (c / "orders.csv").read_bytes()
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()


def test_every_contract_file_with_the_contract_columns(export: Path) -> None:
    assert sorted(p.name for p in export.iterdir()) == sorted([*FILES, "manifest.json"])
    for table in sample.EXPORT_TABLES:
        header = (export / f"{table}.csv").open(encoding="utf-8").readline().rstrip("\n")
        assert header.split(",") == TABLES[table].column_names, table
        df = read(export, table)
        assert len(df) > 0, table
        for col in TABLES[table].columns:
            if col.required:
                assert df[col.name].notna().all(), (table, col.name)
            if col.allowed:
                assert set(df[col.name].dropna()) <= set(col.allowed), (table, col.name)


def test_manifest_matches_the_files(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["mode"] == "full"
    assert sorted(manifest["files"]) == sorted(FILES)
    for name, entry in manifest["files"].items():
        data = (export / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert entry["rows"] == data.count(b"\n") - 1 == len(read(export, name[:-4])), name
    assert manifest["files"]["customers.csv"]["rows"] == N
    assert manifest["files"]["fx_rates.csv"]["rows"] == 3


def test_group_shares(truth: pd.Series) -> None:
    assert len(truth) == N
    shares = truth.value_counts(normalize=True)
    assert set(shares.index) == set(sample.BEHAVIOUR_GROUPS)
    for group, share in sample.GROUP_SHARES.items():
        assert shares[group] == pytest.approx(share, abs=0.005), group


def test_ids_keep_leading_zeros(export: Path) -> None:
    first = {
        t: (export / f"{t}.csv").read_text(encoding="utf-8").splitlines()[1]
        for t in ("customers", "orders", "referrals", "surveys", "events")
    }
    assert first["customers"].startswith("C0000001,user0000001@example.com,")
    assert first["orders"].startswith("O00000001,C")
    assert first["referrals"].startswith("R000001,C")
    assert first["surveys"].startswith("S0000001,C")
    assert first["events"].startswith("E000000001,C")
    patterns = {
        ("customers", "customer_id"): r"C\d{7}",
        ("orders", "order_id"): r"O\d{8}",
        ("orders", "customer_id"): r"C\d{7}",
        ("referrals", "referral_id"): r"R\d{6}",
        ("surveys", "response_id"): r"S\d{7}",
        ("events", "event_id"): r"E\d{9}",
    }
    for (table, col), pattern in patterns.items():
        assert read(export, table)[col].str.fullmatch(pattern).all(), (table, col)
    customers = read(export, "customers")
    assert customers["customer_id"].is_unique
    assert (customers["email"] == "user" + customers["customer_id"].str[1:] + "@example.com").all()


def test_every_reference_points_to_a_customer(export: Path) -> None:
    ids = set(read(export, "customers")["customer_id"])
    assert set(read(export, "orders")["customer_id"]) <= ids
    assert set(read(export, "surveys")["customer_id"]) <= ids
    assert set(read(export, "events")["customer_id"]) <= ids
    refs = read(export, "referrals")
    assert set(refs["referrer_customer_id"]) <= ids
    assert set(refs["referee_customer_id"].dropna()) <= ids
    assert refs["referee_email"].notna().all()
    for table, key in (
        ("orders", "order_id"),
        ("referrals", "referral_id"),
        ("surveys", "response_id"),
        ("events", "event_id"),
    ):
        assert read(export, table)[key].is_unique, table


def test_timestamps_before_the_export_date_within_three_years(export: Path) -> None:
    start = pd.Timestamp(AS_OF - timedelta(days=sample.HISTORY_DAYS))
    end = pd.Timestamp(AS_OF)
    cols = {
        "customers": ["signup_date", "updated_at"],
        "orders": ["order_date", "updated_at"],
        "referrals": ["sent_at", "converted_at", "updated_at"],
        "surveys": ["responded_at"],
        "events": ["occurred_at"],
    }
    for table, names in cols.items():
        df = read(export, table)
        for col in names:
            ts = pd.to_datetime(df[col].dropna(), format="ISO8601")
            assert ts.min() >= start and ts.max() < end, (table, col, ts.min(), ts.max())
    orders = read(export, "orders")
    assert orders["order_date"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()


def test_orders_have_realistic_statuses_amounts_and_currencies(export: Path) -> None:
    orders = read(export, "orders")
    status = orders["status"].value_counts(normalize=True)
    assert set(status.index) == set(ORDER_STATUSES)
    assert 0.03 <= status["refunded"] <= 0.05
    assert 0.01 <= status["cancelled"] <= 0.03
    assert 0 < status["pending"] < 0.02
    assert orders["amount"].str.fullmatch(r"\d+\.\d\d").all()
    assert orders["discount_amount"].str.fullmatch(r"\d+\.\d\d").all()
    amount = orders["amount"].astype(float)
    assert (amount == 0).sum() >= 1
    assert 0.1 < (orders["discount_amount"].astype(float) > 0).mean() < 0.5
    assert amount.mean() > 1.3 * amount.median() and amount.skew() > 2  # right-skewed
    per_customer = orders.groupby("customer_id").size()
    assert per_customer.max() >= 8 * per_customer.median()
    same_day = orders.groupby([orders["customer_id"], orders["order_date"].str[:10]]).size()
    assert (same_day > 1).sum() >= 10
    currency = orders["currency"].value_counts(normalize=True)
    assert currency["USD"] > 0.85 and currency["EUR"] > 0.01 and currency["GBP"] > 0.01
    rates = read(export, "fx_rates").set_index("currency")["rate_to_base"].astype(float)
    assert set(currency.index) <= set(rates.index) and (rates > 0).all()


def test_referral_edge_cases(export: Path) -> None:
    refs = read(export, "referrals")
    customers = read(export, "customers").set_index("customer_id")
    assert set(refs["status"]) == set(REFERRAL_STATUSES)
    converted = refs[refs["status"] == "converted"]
    assert converted["converted_at"].notna().all()
    assert converted["referee_customer_id"].notna().all()
    assert refs.loc[refs["status"] != "converted", "converted_at"].isna().all()
    # self-referrals: by id, and by the referrer's own email (other letter case)
    self_id = refs["referrer_customer_id"] == refs["referee_customer_id"]
    own_email = customers.loc[refs["referrer_customer_id"], "email"].to_numpy()
    self_email = (refs["referee_email"].str.lower() == own_email) & refs[
        "referee_customer_id"
    ].isna()
    assert self_id.sum() >= 1 and self_email.sum() >= 1
    assert (refs.loc[self_email, "referee_email"] != own_email[self_email]).all()
    # duplicate conversions: two converted referrals for one referee
    genuine = converted[converted["referrer_customer_id"] != converted["referee_customer_id"]]
    per_referee = genuine["referee_customer_id"].value_counts()
    assert (per_referee == 2).sum() >= 1 and per_referee.max() == 2
    # the (earliest) conversion is the referee's signup, as a 'referral' customer
    first = genuine.sort_values(["converted_at", "referral_id"]).drop_duplicates(
        "referee_customer_id"
    )
    referee = customers.loc[first["referee_customer_id"]]
    assert (referee["acquisition_channel"] == "referral").all()
    assert (referee["signup_date"].to_numpy() == first["converted_at"].str[:10]).all()
    assert (first["sent_at"] < first["converted_at"]).all()
    referred = set(
        refs.loc[refs["status"].isin(["converted", "signed_up"]) & ~self_id, "referee_customer_id"]
    )
    assert set(customers.index[customers["acquisition_channel"] == "referral"]) == referred
    # double-sided rewards on conversions only
    assert set(
        zip(converted["reward_referrer_amount"], converted["reward_referee_amount"], strict=True)
    ) <= {("20.00", "10.00"), ("15.00", "15.00")}
    assert refs.loc[refs["status"] != "converted", "reward_referrer_amount"].isna().all()
    assert 0.2 < len(refs) / N < 0.5


def test_program_cost_after_as_of_and_24_months_of_spend(export: Path) -> None:
    costs = read(export, "referral_program_costs")
    months = pd.to_datetime(costs["month"])
    assert (months.dt.day == 1).all() and months.is_unique
    assert list(months[months > pd.Timestamp(AS_OF)]) == [pd.Timestamp("2026-12-01")]
    assert (costs["cost"].astype(float) > 0).all()
    spend = read(export, "marketing_spend")
    spend_months = pd.to_datetime(spend["month"])
    assert spend_months.nunique() == 24
    assert spend_months.min() == pd.Timestamp("2024-12-01")
    assert spend_months.max() == pd.Timestamp("2026-11-01")
    assert set(spend["channel"]) <= set(ACQUISITION_CHANNELS) - {"referral"}
    assert not spend.duplicated(["month", "channel"]).any()
    # new_customers are the customers the channel brought in that month
    customers = read(export, "customers")
    customers["month"] = customers["signup_date"].str[:7] + "-01"
    mask = customers["acquisition_channel"] == "paid_search"
    expected = customers[mask].groupby("month").size()
    got = spend[spend["channel"] == "paid_search"].set_index("month")["new_customers"]
    assert (got.astype(int) == expected.reindex(got.index).fillna(0).astype(int)).all()


def test_surveys_and_events(export: Path) -> None:
    surveys = read(export, "surveys")
    nps, csat = surveys["nps"], surveys["csat"]
    assert (nps.notna() | csat.notna()).all()
    assert (nps.isna()).sum() >= 1 and (csat.isna()).sum() >= 1
    assert nps.dropna().astype(int).between(0, 10).all()
    assert csat.dropna().astype(int).between(1, 5).all()
    events = read(export, "events")
    assert set(events["event_type"]) == set(EVENT_TYPES) - {"other"}


def customer_features(folder: Path, as_of: date) -> pd.DataFrame:
    """Per-customer RFM / loyalty / advocacy features, roughly as metrics.md defines them."""
    a = pd.Timestamp(as_of)
    customers = read(folder, "customers").set_index("customer_id")
    orders = read(folder, "orders")
    rates = read(folder, "fx_rates").set_index("currency")["rate_to_base"].astype(float)
    orders["usd"] = orders["amount"].astype(float) * orders["currency"].map(rates)
    orders["ts"] = pd.to_datetime(orders["order_date"])
    done = orders[orders["status"] == "completed"].groupby("customer_id")
    f = pd.DataFrame(index=customers.index)
    f["tenure"] = (a - pd.to_datetime(customers["signup_date"])).dt.days
    f["orders"] = done.size()
    f["aov"] = done["usd"].sum() / f["orders"]
    f["recency"] = (a - done["ts"].max().dt.normalize()).dt.days
    refunded = orders[orders["status"] == "refunded"].groupby("customer_id").size()
    refunded = refunded.reindex(f.index).fillna(0)
    f["refund_rate"] = refunded / (f["orders"] + refunded)
    surveys = read(folder, "surveys")
    f["nps"] = pd.to_numeric(surveys["nps"]).groupby(surveys["customer_id"]).mean()
    f["csat"] = pd.to_numeric(surveys["csat"]).groupby(surveys["customer_id"]).mean()
    refs = read(folder, "referrals")
    refs = refs[refs["referrer_customer_id"] != refs["referee_customer_id"]]
    f["referrals"] = refs.groupby("referrer_customer_id").size()
    f["converted"] = refs[refs["status"] == "converted"].groupby("referrer_customer_id").size()
    events = read(folder, "events")
    events = events[pd.to_datetime(events["occurred_at"]) >= a - pd.Timedelta(days=365)]
    for kind in ("review_posted", "social_share", "support_ticket"):
        f[kind] = events[events["event_type"] == kind].groupby("customer_id").size()
    counts = ["referrals", "converted", "review_posted", "social_share", "support_ticket"]
    f[counts] = f[counts].fillna(0)
    return f


@pytest.fixture(scope="module")
def features(export: Path, truth: pd.Series) -> pd.DataFrame:
    f = customer_features(export, AS_OF)
    f["group"] = truth
    return f


def test_behaviour_groups_differ_on_their_features(features: pd.DataFrame) -> None:
    med = features.groupby("group").median(numeric_only=True)
    mean = features.groupby("group").mean(numeric_only=True)
    prospects = features[features["group"] == "prospects"]
    assert prospects["orders"].isna().all()  # no completed order
    assert features.loc[features["group"] != "prospects", "orders"].notna().all()
    assert (
        med.loc["lapsed", "recency"] >= 300
        and features.loc[features["group"] == "lapsed", "recency"].min() >= 299
    )
    assert med.loc["advocates", "recency"] <= 15 and med.loc["regulars", "recency"] <= 20
    assert features.loc[features["group"] == "new", "tenure"].max() <= 60
    assert features.loc[features["group"] == "new", "orders"].max() <= 2
    assert med.loc["big_spenders", "aov"] > 5 * med.loc["regulars", "aov"]
    assert med.loc["big_spenders", "orders"] <= 3
    assert med.loc["advocates", "orders"] >= 15 and med.loc["regulars", "orders"] >= 10
    assert mean.loc["advocates", "nps"] >= 9 and mean.loc["detractors", "nps"] <= 3
    assert mean.loc["detractors", "csat"] < 2 and mean.loc["advocates", "csat"] > 4.5
    assert mean.loc["detractors", "refund_rate"] > 0.2 > 5 * mean.loc["regulars", "refund_rate"]
    assert med.loc["detractors", "support_ticket"] >= 4
    assert med.loc["advocates", "referrals"] >= 3 and mean.loc["advocates", "converted"] >= 0.5
    assert med.loc["advocates", "review_posted"] >= 3 and med.loc["advocates", "social_share"] >= 3
    quiet = features[features["group"] == "big_spenders"]
    assert quiet[["referrals", "social_share", "review_posted"]].sum().sum() == 0
    assert mean.loc["regulars", "referrals"] < 0.5


def test_kmeans_on_log_scaled_features_recovers_the_groups(features: pd.DataFrame) -> None:
    import sklearn.cluster as sklearn_cluster
    from sklearn.metrics import adjusted_rand_score

    f = features[features["orders"].notna()].copy()  # prospects are not clustered
    f["nps"] = f["nps"].fillna(f["nps"].median())
    f["csat"] = f["csat"].fillna(f["csat"].median())
    x = pd.DataFrame(
        {
            "recency": np.log1p(f["recency"]),
            "orders": np.log1p(f["orders"]),
            "aov": np.log1p(f["aov"]),
            "tenure": np.log1p(f["tenure"]),
            "nps": f["nps"],
            "csat": f["csat"],
            "refund_rate": f["refund_rate"],
            "referrals": np.log1p(f["referrals"]),
            "advocacy": np.log1p(f["review_posted"] + f["social_share"]),
            "tickets": np.log1p(f["support_ticket"]),
        }
    )
    x = (x - x.mean()) / x.std()
    labels = sklearn_cluster.KMeans(6, n_init=10, random_state=0).fit_predict(x)
    assert adjusted_rand_score(f["group"], labels) >= 0.7


def test_next_day_export_is_the_same_population_with_small_changes(
    tmp_path: Path, out_dir: Path, export: Path
) -> None:
    nxt = sample.generate_next_day(tmp_path, N, seed=SEED, as_of=AS_OF)
    assert nxt == tmp_path / "2026-11-22"
    assert not (tmp_path / "2026-11-21").exists()
    manifest = json.loads((nxt / "manifest.json").read_text(encoding="utf-8"))
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((nxt / name).read_bytes()).hexdigest()
    before, after = read(export, "customers"), read(nxt, "customers")
    new = after.iloc[len(before) :]
    assert 0.001 * N <= len(new) <= 0.01 * N
    assert (new["signup_date"] == "2026-11-21").all()
    # existing customers are unchanged (today's referral conversions are newcomers)
    assert after.iloc[: len(before)].equals(before)
    # orders: the old ones are kept (some pending ones completed), ~1-2 % of customers buy
    o1, o2 = read(export, "orders"), read(nxt, "orders")
    assert list(o2["order_id"][: len(o1)]) == list(o1["order_id"])
    new_orders = o2.iloc[len(o1) :]
    assert 0.005 * N <= new_orders["customer_id"].nunique() <= 0.03 * N
    assert (new_orders["order_date"].str[:10] == "2026-11-21").all()
    status_changed = o2.iloc[: len(o1)]["status"].to_numpy() != o1["status"].to_numpy()
    assert set(o1.loc[status_changed, "status"]) <= {"pending"}
    r1, r2 = read(export, "referrals"), read(nxt, "referrals")
    assert len(r1) == len(r2)
    became = (r1["status"] != "converted") & (r2["status"] == "converted")
    assert became.sum() >= 1
    assert set(r2.loc[became, "referee_customer_id"]) <= set(new["customer_id"])
    # ground truth: everybody keeps their group; newcomers are new or prospects
    g1 = pd.read_csv(out_dir / "_ground_truth" / "2026-11-21.csv", dtype=str)
    g2 = pd.read_csv(tmp_path / "_ground_truth" / "2026-11-22.csv", dtype=str)
    assert g2.iloc[: len(g1)].equals(g1)
    assert set(g2.iloc[len(g1) :]["behaviour_group"]) <= {"new", "prospects"}


def test_cli_days_writes_the_same_files_as_the_api(tmp_path: Path) -> None:
    sample.main(
        [
            "--customers",
            "600",
            "--out",
            str(tmp_path / "cli"),
            "--seed",
            "5",
            "--as-of",
            "2026-03-01",
            "--days",
            "2",
        ]
    )
    sample.generate_export(tmp_path / "api", 600, seed=5, as_of=date(2026, 3, 1))
    sample.generate_next_day(tmp_path / "api", 600, seed=5, as_of=date(2026, 3, 1))
    cli, api = file_bytes(tmp_path / "cli"), file_bytes(tmp_path / "api")
    assert "2026-03-02/manifest.json" in cli
    assert cli == api
