"""Ingest's fast paths give the same answers as the general ones (no timing here)."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.ingest import typed_expr
from pipelines.schemas import Column

TIMESTAMPS = [
    "2024-01-01 10:00:00",
    "2024-01-01T10:00:00",
    "2024-01-01 10:00:00+02:00",
    "2024-01-01 10:00:00+02",
    "2024-01-01T10:00:00Z",
    "2024-01-01 10:00:00 UTC",
    "2024-01-01 10:00:00-0500",
    "2024-01-01 10:00:00 Europe/Paris",
    "2024-01-01",
    "2024-01-01 10:00:00.123456",
    "2024-01-01 10:00+0200",
    "2024-01-01 24:00:00",
    "2024-02-30 10:00:00",
    "garbage",
    "1999-12-31 23:59:59",
    None,
]


@pytest.mark.parametrize("tz", ["UTC"])
def test_timestamp_fast_path_equals_timestamptz_cast(tz):
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{tz}'")
    expr = typed_expr(Column("t", "timestamp"), "x")
    rows = con.execute(
        f"SELECT x, {expr}, CAST(TRY_CAST(x AS TIMESTAMPTZ) AS TIMESTAMP) "
        "FROM (SELECT unnest(?) AS x)",
        [TIMESTAMPS],
    ).fetchall()
    assert len(rows) == len(TIMESTAMPS)
    for text, fast, general in rows:
        assert fast == general, text
