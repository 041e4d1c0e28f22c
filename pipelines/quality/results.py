"""The results log: every expectation's result in raw.validation_results."""

import datetime as dt
import json

import duckdb

from pipelines.quality.frames import as_date
from pipelines.quality.validation import ValidationOutcome
from pipelines.sql import transaction

VALIDATION_RESULTS_DDL = """
CREATE TABLE IF NOT EXISTS raw.validation_results (
    run_id VARCHAR NOT NULL,
    export_date DATE,
    suite VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    column_name VARCHAR,
    success BOOLEAN NOT NULL,
    element_count BIGINT,
    unexpected_count BIGINT,
    sample JSON,
    severity VARCHAR,
    error VARCHAR,
    checked_at TIMESTAMPTZ DEFAULT current_timestamp
)"""


def record_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    export_date: dt.date | str | None,
    outcome: ValidationOutcome,
) -> None:
    """Log every expectation's result to raw.validation_results (replacing this run's rows
    for the suite, so a retried check does not log twice)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(VALIDATION_RESULTS_DDL)
    export_date = as_date(export_date) if export_date is not None else None
    rows = [
        (
            run_id,
            export_date,
            outcome.suite,
            r.type,
            r.column,
            r.success,
            r.element_count,
            r.unexpected_count,
            json.dumps(
                r.partial_unexpected_list if r.partial_unexpected_list else r.observed_value
            ),
            r.severity,
            r.error,
        )
        for r in outcome.results
    ]
    with transaction(con):
        con.execute(
            "DELETE FROM raw.validation_results WHERE run_id = ? AND suite = ?",
            [run_id, outcome.suite],
        )
        if rows:
            con.executemany(
                "INSERT INTO raw.validation_results (run_id, export_date, suite, expectation, "
                "column_name, success, element_count, unexpected_count, sample, severity, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
