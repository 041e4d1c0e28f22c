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


# Connections inside `rolled_back`: DuckDB has no nested transactions (or savepoints),
# so a `transaction` block there joins the outer one.
_TRIAL: set[int] = set()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: committed when the block ends, rolled back when anything escapes it
    (an interrupt too, so a killed step leaves no half-written tables)."""
    if id(con) in _TRIAL:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def rolled_back(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block and undo everything it wrote (a trial: what would this do?)."""
    con.execute("BEGIN TRANSACTION")
    _TRIAL.add(id(con))
    try:
        yield
    finally:
        _TRIAL.discard(id(con))
        con.execute("ROLLBACK")
