"""Time units, the export dates and epoch/month conversions.

Every timestamp is before the export date (midnight UTC); the history spans 3 years.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

DAY = 86_400
HOUR = 3_600
HISTORY_DAYS = 1095  # 3 years of history before the first export
DEFAULT_AS_OF = date(2026, 11, 21)


def epoch_seconds(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def month_index(seconds: np.ndarray) -> np.ndarray:
    """Months since year 0 (year * 12 + month - 1) of epoch seconds."""
    months = (
        np.asarray(seconds, dtype=np.int64)
        .astype("datetime64[s]")
        .astype("datetime64[M]")
        .astype(np.int64)
    )
    return months + 1970 * 12


def month_start(ym: int) -> date:
    return date(ym // 12, ym % 12 + 1, 1)
