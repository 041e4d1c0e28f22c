"""SQL text of a file's temp table shared by the readers, typing and row checks (quoting
is `pipelines.sql`, shared with quality)."""

from __future__ import annotations

from pipelines.sql import quote_ident


def text_of(expr: str) -> str:
    """The trimmed text of a value, NULL when blank: what every rule and cast starts from."""
    return f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"


def text_expr(src_col: str | None) -> str:
    if src_col is None:
        return "CAST(NULL AS VARCHAR)"
    return text_of(f"s.{quote_ident(src_col)}")


def line_number_sql(tmp: str) -> str:
    # Temp-table rowids start at an offset; subtracting the first gives the data row number.
    return f"s.rowid - (SELECT min(rowid) FROM {tmp}) + 2"
