"""What the Dagster catalog shows of each dbt table: where it lives, its rows and columns.

dagster-dbt's own `fetch_row_counts()` / `fetch_column_metadata()` do not work here
(measured on the hand fixture, docs/decisions.md, "The Dagster catalog"): they query the
relation names of the manifest, which `make parse` writes against the parse-time file
(`"parse"."marts"...`), not the run's store, so every count fails; and the read-only
DuckDB handle they open in the run's process outlives the dbt step, so the next step's
read-write connection to the same file is refused and the run fails.  Instead, once dbt
has exited, one read-only connection of our own measures every table dbt built
(`measure_tables`) and the stage adds the numbers to the events it yields
(`with_table_metadata`).

Names: a table's `dagster/table_name` is where a reader finds it, `<file>.<schema>.<table>`,
`warehouse` for the analysts' file (the schemas `pipelines.publish.PUBLISHED_SCHEMAS`
copies there) and `store` for the pipeline's private store (everything else).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
from dagster import AssetMaterialization, Output, TableColumn, TableSchema

from pipelines.publish import PUBLISHED_SCHEMAS
from pipelines.sql import quote_ident

ANALYSTS_FILE = "warehouse"
PIPELINE_STORE = "store"


def published_table_name(schema: str, table: str) -> str:
    """Where a reader finds the table: `warehouse.<schema>.<table>` for what publishing
    copies into the analysts' file, else `store.<schema>.<table>` (the pipeline's store)."""
    place = ANALYSTS_FILE if schema in PUBLISHED_SCHEMAS else PIPELINE_STORE
    return f"{place}.{schema}.{table}"


@dataclass(frozen=True)
class Relation:
    """A dbt model as built in the run's database."""

    schema: str
    name: str
    is_view: bool
    column_descriptions: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of_node(cls, node: Mapping[str, Any]) -> Relation:
        return cls(
            schema=node["schema"],
            name=node.get("alias") or node["name"],
            is_view=node.get("config", {}).get("materialized") == "view",
            column_descriptions={
                name.lower(): column.get("description") or ""
                for name, column in node.get("columns", {}).items()
            },
        )


def measure_tables(
    con: duckdb.DuckDBPyConnection, relations: Iterable[Relation]
) -> dict[Relation, dict[str, Any]]:
    """`dagster/row_count` and `dagster/column_schema` of each relation, from the database.

    Columns, in table order, and their types come from the database (what was built), their
    descriptions from the dbt YAML.  Rows are counted for tables only: DuckDB answers a bare
    count(*) of a table from its row groups, while a view's count would run the view's
    query.  A relation missing from the database (a model dbt skipped after a failure) is
    left out."""
    relations = list(relations)
    if not relations:
        return {}
    wanted = {(r.schema, r.name): r for r in relations}
    columns: dict[Relation, list[TableColumn]] = {}
    rows = con.execute(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name IN "
        f"({', '.join('?' for _ in {r.schema for r in relations})}) "
        "ORDER BY schema_name, table_name, column_index",
        sorted({r.schema for r in relations}),
    ).fetchall()
    for schema, table, column, data_type in rows:
        relation = wanted.get((schema, table))
        if relation is not None:
            columns.setdefault(relation, []).append(
                TableColumn(
                    name=column,
                    type=data_type,
                    description=relation.column_descriptions.get(column.lower()) or None,
                )
            )
    measured: dict[Relation, dict[str, Any]] = {}
    for relation, table_columns in columns.items():
        # Dagster's documented table metadata keys (the catalog's "Rows" and "Columns").
        metadata: dict[str, Any] = {
            "dagster/table_name": published_table_name(relation.schema, relation.name),
            "dagster/column_schema": TableSchema(columns=table_columns),
        }
        if not relation.is_view:
            name = f"{quote_ident(relation.schema)}.{quote_ident(relation.name)}"
            metadata["dagster/row_count"] = con.execute(f"SELECT count(*) FROM {name}").fetchone()[
                0
            ]
        measured[relation] = metadata
    return measured


Event = Any  # the events of DbtCliInvocation.stream(): Output, AssetCheckResult, ...


def with_table_metadata(
    events: Iterator[Event],
    nodes: Mapping[str, Mapping[str, Any]],
    connect: Callable[[], contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]],
    wait_for_dbt: Callable[[], Any],
    log: logging.Logger | Any,
    stop_dbt: Callable[[], Any] | None = None,
) -> Iterator[Event]:
    """The events of a dbt stream, each table's materialization with its rows and columns.

    DuckDB lets one process write a file, and dbt (a child process) writes the store
    until it exits: the events are held until the stream ends and dbt is gone, then the
    tables are measured through `connect()` (one read-only connection) and every event is
    yielded in dbt's order.  When dbt fails, what it did build is still reported, measured,
    before its error is raised.  Measuring is reporting only: if it fails, the events go
    out without the numbers and a warning says why, the night goes on.

    The stream can also fail while dbt still runs (dagster-dbt cannot handle one of its
    events): then nobody reads dbt's output any more, and dbt, blocked on a full pipe,
    would never exit; `stop_dbt()` ends it before it is waited for."""
    held: list[Event] = []
    error: BaseException | None = None
    try:
        for event in events:
            held.append(event)
    except Exception as exc:  # dbt failed: report what it built, then raise its error
        error = exc
        if stop_dbt is not None:
            stop_dbt()
    wait_for_dbt()
    built: dict[int, Relation] = {}
    for index, event in enumerate(held):
        if isinstance(event, Output | AssetMaterialization):
            unique_id = event.metadata.get("unique_id")
            node = nodes.get(getattr(unique_id, "value", None) or "")
            if node is not None and node.get("resource_type") in ("model", "snapshot", "seed"):
                built[index] = Relation.of_node(node)
    measured: dict[Relation, dict[str, Any]] = {}
    if built:
        started = time.monotonic()
        try:
            with connect() as con:
                measured = measure_tables(con, set(built.values()))
        except duckdb.Error as exc:
            log.warning(f"Row counts and column schemas of the dbt tables not measured: {exc}")
        else:
            log.info(
                f"Measured {len(measured)} dbt tables (rows, columns) in "
                f"{time.monotonic() - started:.2f} s"
            )
    for index, event in enumerate(held):
        extra = measured.get(built[index]) if index in built else None
        yield event.with_metadata({**event.metadata, **extra}) if extra else event
    if error is not None:
        raise error
