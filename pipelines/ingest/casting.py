"""SQL typing the trimmed text of a column into its raw type."""

from __future__ import annotations

from pipelines.schemas import Column
from pipelines.sql import sql_literal

BOOL_TRUE = ("true", "1", "yes", "t", "y")
BOOL_FALSE = ("false", "0", "no", "f", "n")


def typed_expr(col: Column, txt: str) -> str:
    """SQL turning the trimmed text into the raw column's type (NULL when unparseable)."""
    if col.type == "id":
        return txt
    if col.type == "string":
        if col.allowed is not None:
            return f"lower({txt})"
        if col.upper_case:
            return f"upper({txt})"
        return txt
    if col.type == "date":
        return f"TRY_CAST({txt} AS DATE)"
    if col.type == "timestamp":
        # Fast path (the common case): exactly 'YYYY-MM-DD HH:MM:SS' (or with 'T') leaves no
        # room for an offset or zone name, and TIMESTAMP parses it as TIMESTAMPTZ does in
        # UTC, ~5x faster. Anything else goes through TIMESTAMPTZ (offsets, zones).
        return (
            f"CASE WHEN length({txt}) = 19 AND {txt}[11] IN (' ', 'T') "
            f"AND {txt}[14] = ':' AND {txt}[17] = ':' THEN TRY_CAST({txt} AS TIMESTAMP) "
            f"ELSE CAST(TRY_CAST({txt} AS TIMESTAMPTZ) AS TIMESTAMP) END"
        )
    if col.type == "money":
        return f"TRY_CAST({txt} AS DECIMAL(18,4))"
    if col.type == "decimal":
        return f"TRY_CAST({txt} AS DECIMAL(18,8))"
    if col.type == "int":
        return f"TRY_CAST({txt} AS BIGINT)"
    if col.type == "bool":
        t = ", ".join(sql_literal(v) for v in BOOL_TRUE)
        f = ", ".join(sql_literal(v) for v in BOOL_FALSE)
        return (
            f"CASE WHEN lower({txt}) IN ({t}) THEN true WHEN lower({txt}) IN ({f}) THEN false END"
        )
    raise ValueError(f"unknown type {col.type}")
