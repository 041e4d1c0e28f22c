"""Customer segmentation: marts.customer_features -> segments with stable ids, names, profiles.

`segment_customers` is pure (DataFrames in, DataFrames out); `run_segmentation` does the
DuckDB I/O. Customers without a completed order form the fixed segment `prospects`; the
others are clustered with KMeans on standardised features (log1p on the skewed ones), k
chosen by silhouette on a seeded sample under a minimum-share guard, or kept from the
previous run with KMeans started from its centroids (the warm start, `warm`). Centroids are
kept in
ORIGINAL units (the exact inverse of the fitted transform), so the next run can project the
previous centroids with its own fitted transformer and match them (Hungarian assignment).

Modules: `config` (shared constants, SegmentationConfig), `model` (preprocessor, silhouettes,
k scan, canonical order), `ids` (Hungarian id matching), `naming` (archetype names, personas,
incentives), `profiles` (profile columns and aggregation), `segment` (`segment_customers`,
SegmentationResult), `warm` (warm start or k scan: the policy both engines share),
`warehouse` (`run_segmentation`, table writes).
"""

from pipelines.segmentation.config import (
    DEFAULT_FEATURES,
    PROSPECTS_ID,
    PROSPECTS_NAME,
    ROUND,
    SegmentationConfig,
)
from pipelines.segmentation.ids import match_ids
from pipelines.segmentation.model import (
    LOG_FEATURES,
    NEUTRAL_FILL,
    ZERO_FILL,
    build_preprocessor,
    silhouettes,
)
from pipelines.segmentation.naming import FEATURE_LABELS, INCENTIVES
from pipelines.segmentation.profiles import (
    CATEGORICAL_SOURCES,
    MEAN_SOURCES,
    PROFILE_COLUMNS,
    PROFILE_MEANS,
)
from pipelines.segmentation.segment import SegmentationResult, segment_customers
from pipelines.segmentation.warehouse import ensure_profile_columns, run_segmentation

__all__ = [
    "CATEGORICAL_SOURCES",
    "DEFAULT_FEATURES",
    "FEATURE_LABELS",
    "INCENTIVES",
    "LOG_FEATURES",
    "MEAN_SOURCES",
    "NEUTRAL_FILL",
    "PROFILE_COLUMNS",
    "PROFILE_MEANS",
    "PROSPECTS_ID",
    "PROSPECTS_NAME",
    "ROUND",
    "ZERO_FILL",
    "SegmentationConfig",
    "SegmentationResult",
    "build_preprocessor",
    "ensure_profile_columns",
    "match_ids",
    "run_segmentation",
    "segment_customers",
    "silhouettes",
]
