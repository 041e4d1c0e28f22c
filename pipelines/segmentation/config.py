"""Shared constants (prospects segment, rounding, default features) and SegmentationConfig.

The operator's knobs (SEGMENT_K_MIN, ...) reach it through the `segmentation` resource
(pipelines/resources.py, SegmentationResource)."""

from __future__ import annotations

from dataclasses import dataclass

PROSPECTS_ID = "prospects"
PROSPECTS_NAME = "Prospects"
ROUND = 6

DEFAULT_FEATURES: tuple[str, ...] = (
    "orders_count",
    "net_revenue",
    "avg_order_value",
    "days_since_last_order",
    "tenure_days",
    "purchase_days_per_year",
    "nps_avg",
    "csat_avg",
    "referrals_sent",
    "reviews_posted",
    "social_shares",
    "refund_rate",
    "discount_share",
)


@dataclass(frozen=True)
class SegmentationConfig:
    k_min: int = 3
    k_max: int = 8
    min_share: float = 0.03  # of the clustered customers (prospects excluded)
    seed: int = 42
    n_init: int = 4
    sample_size: int = 20_000  # silhouette sample
    fit_sample_size: int = 200_000  # above this many clustered customers, fit on a sample
    batch_size: int = 250_000  # transform/predict batch
    max_match_distance: float | None = 2.5  # Euclidean, current standardised space
    n_threads: int = 2  # <= 2 keeps KMeans' OpenMP reduction order-independent
    features: tuple[str, ...] = DEFAULT_FEATURES
    # Warm start (pipelines/segmentation/warm.py): the previous run's k and centroids are
    # kept unless the guard fails, the silhouette falls more than `rescan_silhouette_drop`
    # under the last full k scan's, or that scan is `rescan_days` days old (0: scan nightly).
    rescan_days: int = 28
    rescan_silhouette_drop: float = 0.05

    def __post_init__(self):
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"need 2 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if not 0 <= self.min_share < 1:
            raise ValueError(f"min_share must be in [0, 1), got {self.min_share}")
        if self.rescan_days < 0:
            raise ValueError(f"rescan_days must be >= 0, got {self.rescan_days}")
        if not 0 <= self.rescan_silhouette_drop <= 2:
            raise ValueError(
                f"rescan_silhouette_drop must be in [0, 2], got {self.rescan_silhouette_drop}"
            )
