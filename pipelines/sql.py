"""SQL helpers shared by ingest, quality, erasure and the converters.

Every name and string spliced into DuckDB SQL goes through the one quoting here, so a
quote inside a column name, a path or a value set cannot end the literal early.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: committed when the block ends, rolled back when anything escapes it
    (an interrupt too, so a killed step leaves no half-written tables)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
