"""GX suites: expectations/<suite>.json, the columns a suite refers to, and the process's
ephemeral GX context (one lazily created context, one validation definition per suite).

Which suites exist is not listed here.  Raw suites follow the contract: every table of
`schemas.TABLES` has `expectations/raw_<table>.json` unless its `raw_suite` is False (a
test fails on a table with neither), so a new table cannot go unchecked by oversight.
Mart suites follow their files: every `expectations/marts_<mart>.json` is the suite of
`marts.<mart>`, so adding a mart check is adding its file.  Marts are dbt models and two
segmentation tables, not a list Python could read without dbt's manifest, and a suite file
is what a mart check needs anyway (a test checks that each suite's mart is built: Dagster
would take a check on an unknown asset for an external one and never run it).
"""

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.schemas import TABLES

if TYPE_CHECKING:
    import great_expectations as gx

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "expectations"

RAW_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.raw_suite)
MART_TABLES: tuple[str, ...] = tuple(
    sorted(
        p.name.removeprefix("marts_").removesuffix(".json")
        for p in EXPECTATIONS_DIR.glob("marts_*.json")
    )
)


gx_lock = threading.RLock()
_context: Any = None
_validation_definitions: dict[str, Any] = {}


def _gx_context() -> Any:
    """The process's ephemeral GX context with one pandas whole-DataFrame batch definition."""
    global _context
    with gx_lock:
        if _context is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            # Analytics off in the context itself (GX 1.x releases that send usage events
            # read this before GX_ANALYTICS_ENABLED), so no environment variable is needed.
            config = DataContextConfig(
                analytics_enabled=False, store_backend_defaults=InMemoryStoreBackendDefaults()
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = context.data_sources.add_pandas("quality").add_dataframe_asset("frames")
            asset.add_batch_definition_whole_dataframe("whole_frame")
            _context = context
        return _context


def _batch_definition() -> Any:
    return (
        _gx_context()
        .data_sources.get("quality")
        .get_asset("frames")
        .get_batch_definition("whole_frame")
    )


def suite_path(name: str) -> Path:
    return EXPECTATIONS_DIR / f"{name}.json"


def load_suite(name: str) -> "gx.ExpectationSuite":
    """A fresh (unregistered) ExpectationSuite from expectations/<name>.json.

    GX drops an invalid expectation with only a log line; this raises instead.
    """
    import great_expectations as gx

    _gx_context()  # make sure GX is configured before its first use
    spec = json.loads(suite_path(name).read_text())
    suite = gx.ExpectationSuite(
        name=spec["name"],
        expectations=spec.get("expectations", []),
        meta=spec.get("meta") or {},
        notes=spec.get("notes"),
    )
    if len(suite.expectations) != len(spec.get("expectations", [])):
        raise ValueError(f"{suite_path(name)}: an expectation is not valid (see the GX log)")
    if suite.name != name:
        raise ValueError(f"{suite_path(name)}: suite is named {suite.name!r}, expected {name!r}")
    return suite


def suite_spec(name: str) -> dict[str, Any]:
    return json.loads(suite_path(name).read_text())


def validation_definition(suite_name: str) -> Any:
    with gx_lock:
        vd = _validation_definitions.get(suite_name)
        if vd is None:
            import great_expectations as gx

            context = _gx_context()
            suite = context.suites.add(load_suite(suite_name))
            vd = context.validation_definitions.add(
                gx.ValidationDefinition(
                    data=_batch_definition(), suite=suite, name=f"validate_{suite_name}"
                )
            )
            _validation_definitions[suite_name] = vd
        return vd


def suite_columns(suite_name: str) -> list[str]:
    """Columns a suite refers to (kwargs and meta.sample_column), in first-use order."""
    names: list[str] = []
    for exp in suite_spec(suite_name)["expectations"]:
        kw = exp.get("kwargs", {})
        for key in ("column", "column_A", "column_B"):
            if kw.get(key):
                names.append(kw[key])
        for key in ("column_list", "column_set"):
            names.extend(kw.get(key) or [])
        if (exp.get("meta") or {}).get("sample_column"):
            names.append(exp["meta"]["sample_column"])
    return list(dict.fromkeys(names))


def iter_suite_names() -> Iterator[str]:
    yield from (f"raw_{t}" for t in RAW_TABLES)
    yield from (f"marts_{m}" for m in MART_TABLES)
