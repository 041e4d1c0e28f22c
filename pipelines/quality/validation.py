"""Validation of a pandas frame against a suite: ExpectationResult, ValidationOutcome."""

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from pipelines.quality.suites import gx_lock, validation_definition

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's result, JSON-safe."""

    type: str
    column: str | None
    success: bool
    severity: str = "critical"  # GX severity: critical | warning | info
    element_count: int | None = None
    unexpected_count: int | None = None
    partial_unexpected_list: list[Any] = field(default_factory=list)
    observed_value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ValidationOutcome:
    suite: str
    success: bool
    evaluated: int
    failed: int
    failures: list[ExpectationResult]
    results: list[ExpectationResult]

    @property
    def unexpected_count(self) -> int:
        return sum(f.unexpected_count or 0 for f in self.failures)

    @property
    def critical(self) -> bool:
        """Whether a failed expectation has GX severity "critical" (the check blocks)."""
        return any(f.severity == "critical" for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json_safe(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        return None if value is pd.NaT else value.isoformat()
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, bool | int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column"):
        return kwargs["column"]
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    if kwargs.get("column_list"):
        return ",".join(kwargs["column_list"])
    return None


def _error_message(exception_info: Any) -> str | None:
    """First exception message of a GX result (flat or keyed by metric)."""
    if not isinstance(exception_info, Mapping):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    for info in exception_info.values():
        if isinstance(info, Mapping) and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def _result(er: Any, df: pd.DataFrame) -> ExpectationResult:
    config = er.expectation_config
    res = dict(er.result or {})
    sample = list(res.get("partial_unexpected_list") or [])
    sample_column = (config.meta or {}).get("sample_column")
    index = res.get("partial_unexpected_index_list")
    if sample_column and sample_column in df.columns and index is not None:
        sample = df[sample_column].loc[list(index)].tolist()
    observed = res.get("observed_value")
    details = res.get("details") or {}
    if config.type == "expect_table_columns_to_match_set":
        sample = list((details.get("mismatched") or {}).get("missing") or [])
    element_count = res.get("element_count")
    return ExpectationResult(
        type=config.type,
        column=_column_of(config.kwargs),
        success=bool(er.success),
        severity=getattr(config.severity, "value", str(config.severity or "critical")),
        element_count=int(element_count) if element_count is not None else len(df),
        unexpected_count=(
            int(res["unexpected_count"]) if res.get("unexpected_count") is not None else None
        ),
        partial_unexpected_list=_json_safe(sample[:SAMPLE_SIZE]),
        observed_value=_json_safe(observed),
        error=_error_message(er.exception_info),
    )


def validate_frame(
    suite_name: str, df: pd.DataFrame, element_count: int | None = None
) -> ValidationOutcome:
    """Validate a DataFrame against expectations/<suite_name>.json.

    ``element_count``: the number of rows of the table the frame stands for, when the
    frame is a compact one (see `compact_frame`); every result reports it.
    """
    vd = validation_definition(suite_name)
    order = {e.id: i for i, e in enumerate(vd.suite.expectations)}
    with gx_lock:
        run = vd.run(batch_parameters={"dataframe": df})
    ordered = sorted(run.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    results = [_result(er, df) for er in ordered]
    if element_count is not None:
        results = [replace(r, element_count=element_count) for r in results]
    failures = [r for r in results if not r.success]
    return ValidationOutcome(
        suite=suite_name,
        success=not failures,
        evaluated=len(results),
        failed=len(failures),
        failures=failures,
        results=results,
    )
