"""The floor: the least a skilled engineer would hand-write for the nightly job.

    python bench/floor.py EXPORT_FOLDER WORK_DIR

1. DuckDB reads the export's CSVs into tables (customers, orders, referrals, surveys,
   events) of a DuckDB file in WORK_DIR;
2. one SQL statement builds a per-customer feature table;
3. scikit-learn scales it (log1p on counts/money/days, StandardScaler) and fits KMeans
   (k=6, n_init=3), silhouette on a seeded 20k sample;
4. one SQL statement aggregates referral counts and reward cost per segment.

No ingest checks, quarantine, validation, history, stable ids or atomic publish: this is
what the nightly job is compared against, not a replacement for it.  Prints one JSON line
with the stage times and the silhouette.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

# Only what FEATURES_SQL and ROI_SQL read: the floor is hand-written on purpose, so it
# keeps its own list rather than loading every contract table of pipelines/schemas.py.
TABLES = ("customers", "orders", "referrals", "surveys", "events")
FEATURES = (
    "orders_count",
    "net_revenue",
    "avg_order_value",
    "days_since_last_order",
    "tenure_days",
    "nps_avg",
    "csat_avg",
    "referrals_sent",
    "reviews_posted",
    "social_shares",
    "refund_rate",
    "discount_share",
)
LOG = {
    "orders_count",
    "net_revenue",
    "avg_order_value",
    "days_since_last_order",
    "tenure_days",
    "referrals_sent",
    "reviews_posted",
    "social_shares",
}

FEATURES_SQL = """
CREATE TABLE features AS
WITH as_of AS (SELECT DATE '{as_of}' AS d),
o AS (
    SELECT customer_id,
           count(*) FILTER (WHERE status = 'completed') AS orders_count,
           sum(amount) FILTER (WHERE status = 'completed') AS net_revenue,
           max(order_date) FILTER (WHERE status = 'completed') AS last_order,
           count(*) FILTER (WHERE status = 'refunded') AS refunded,
           sum(discount_amount) FILTER (WHERE status = 'completed') AS discount,
           count(*) AS all_orders
    FROM orders GROUP BY customer_id),
s AS (SELECT customer_id, avg(nps) AS nps_avg, avg(csat) AS csat_avg
      FROM surveys GROUP BY customer_id),
e AS (SELECT customer_id,
             count(*) FILTER (WHERE event_type = 'review_posted') AS reviews_posted,
             count(*) FILTER (WHERE event_type = 'social_share') AS social_shares
      FROM events WHERE occurred_at > (SELECT d FROM as_of) - INTERVAL 365 DAY
      GROUP BY customer_id),
r AS (SELECT referrer_customer_id AS customer_id, count(*) AS referrals_sent
      FROM referrals GROUP BY 1)
SELECT c.customer_id,
       coalesce(o.orders_count, 0)::DOUBLE AS orders_count,
       coalesce(o.net_revenue, 0)::DOUBLE AS net_revenue,
       (o.net_revenue / nullif(o.orders_count, 0))::DOUBLE AS avg_order_value,
       date_diff('day', o.last_order::DATE, (SELECT d FROM as_of))::DOUBLE
           AS days_since_last_order,
       date_diff('day', c.signup_date, (SELECT d FROM as_of))::DOUBLE AS tenure_days,
       s.nps_avg, s.csat_avg,
       coalesce(r.referrals_sent, 0)::DOUBLE AS referrals_sent,
       coalesce(e.reviews_posted, 0)::DOUBLE AS reviews_posted,
       coalesce(e.social_shares, 0)::DOUBLE AS social_shares,
       coalesce(o.refunded / nullif(o.all_orders, 0), 0)::DOUBLE AS refund_rate,
       coalesce(o.discount / nullif(o.net_revenue + o.discount, 0), 0)::DOUBLE
           AS discount_share
FROM customers c
LEFT JOIN o USING (customer_id) LEFT JOIN s USING (customer_id)
LEFT JOIN e USING (customer_id) LEFT JOIN r USING (customer_id)
WHERE coalesce(o.orders_count, 0) > 0
ORDER BY c.customer_id
"""

ROI_SQL = """
CREATE TABLE roi_by_segment AS
SELECT s.segment, count(*) AS referrals_sent,
       count(*) FILTER (WHERE r.status = 'converted') AS referrals_converted,
       sum(CASE WHEN r.status = 'converted'
                THEN coalesce(r.reward_referrer_amount, 0) + coalesce(r.reward_referee_amount, 0)
                ELSE 0 END) AS reward_cost
FROM referrals r JOIN segments s ON s.customer_id = r.referrer_customer_id
GROUP BY s.segment ORDER BY s.segment
"""


def main(export: Path, work: Path) -> dict:
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    db = work / "floor.duckdb"
    db.unlink(missing_ok=True)
    # 4GB ran out of memory at 10M customers in the feature statement; 8GB is ample.
    con = duckdb.connect(str(db), config={"threads": 2, "memory_limit": "8GB"})
    for t in TABLES:
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv('{export / (t + '.csv')}')")
    times["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    con.execute(FEATURES_SQL.format(as_of=export.name))
    times["features"] = time.perf_counter() - t

    t = time.perf_counter()
    df = con.execute(f"SELECT customer_id, {', '.join(FEATURES)} FROM features").df()
    X = df[list(FEATURES)].to_numpy(dtype=np.float64)
    X = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    for j, f in enumerate(FEATURES):
        if f in LOG:
            X[:, j] = np.log1p(np.clip(X[:, j], 0, None))
    X = StandardScaler().fit_transform(X)
    with threadpool_limits(limits=2):
        km = KMeans(n_clusters=6, n_init=3, random_state=42).fit(X)
        sil = float(
            silhouette_score(X, km.labels_, sample_size=min(20_000, len(X)), random_state=42)
        )
    times["kmeans"] = time.perf_counter() - t

    t = time.perf_counter()
    seg = df[["customer_id"]].assign(segment=km.labels_.astype(np.int32))
    con.register("seg_df", seg)
    con.execute("CREATE TABLE segments AS SELECT * FROM seg_df")
    con.unregister("seg_df")
    con.execute(ROI_SQL)
    rows = con.execute("SELECT count(*) FROM roi_by_segment").fetchone()[0]
    con.close()
    times["roi"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return {
        "silhouette": round(sil, 4),
        "customers_clustered": len(df),
        "segments": rows,
        "times": {k: round(v, 3) for k, v in times.items()},
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())))
