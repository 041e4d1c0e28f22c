"""A system's folder as data: its vendor file layouts and how they map onto the contract.

A system is one folder holding `system.yaml` and, where a reshape is needed, SQL files (or
a Python hook) next to it; docs/sources.md describes the format.  Everything here is
checked when the folder is loaded, so a mistake in a mapping fails at start-up with the
folder's name, not in the middle of a night.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.schemas import CONTRACT_SOURCE, TABLES

SYSTEM_FILE = "system.yaml"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_TYPES = ("text", "date", "timestamp", "decimal", "int", "bool")
# Output columns a table mapping may select besides the contract columns.
LINEAGE_COLUMNS = ("_source_file", "_line_number")
OPTIONAL_OUTPUTS = ("_source_id", "_reject")
# `<customer column>__source_id` / `__email`: resolved into the customer id by identity.
REF_SUFFIXES = ("__source_id", "__email")
DEFAULT_NEW_ID = "{system}:{source_id}"
DEFAULT_NEW_ID_BY_EMAIL = "{system}:{email_hash}"


class SourceSpecError(ValueError):
    """A system folder that cannot be used (the message names the folder and the fault)."""


def normalise_header(name: str) -> str:
    """A header as compared: letters and digits only, lower case (case, blanks, BOM,
    underscores and punctuation ignored), so `Customer ID` = `customer_id` = ` CUSTOMER-ID`."""
    text = unicodedata.normalize("NFKC", name).replace("\ufeff", "").lower()
    return "".join(ch for ch in text if ch.isalnum())


@dataclass(frozen=True)
class LayoutColumn:
    """One column of a vendor file: the name the mapping SQL sees and its header spellings."""

    name: str
    headers: tuple[str, ...]
    required: bool = False
    type: str = "text"
    formats: tuple[str, ...] = ()  # strptime formats, or "unix" / "unix_ms"
    decimal_comma: bool = False

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(normalise_header(h) for h in self.headers)


@dataclass(frozen=True)
class SkipRule:
    """Rows a layout holds that map onto nothing by design, counted under `reason`."""

    reason: str
    when: str  # SQL condition over the layout's columns (window functions allowed)


@dataclass(frozen=True)
class Layout:
    system: str
    name: str
    title: str
    file: str  # the file name the vendor usually writes (docs, messages)
    columns: tuple[LayoutColumn, ...]
    skip: tuple[SkipRule, ...] = ()
    strip_leading_apostrophe: bool = False

    @property
    def key(self) -> str:
        return f"{self.system}/{self.name}"

    def column_for(self, headers: list[str]) -> dict[str, str]:
        """Layout column -> the file's header that holds it (first spelling present)."""
        by_key: dict[str, str] = {}
        for h in headers:
            by_key.setdefault(normalise_header(h), h)
        found = {}
        for col in self.columns:
            for spelling in col.headers:
                header = by_key.get(normalise_header(spelling))
                if header is not None:
                    found[col.name] = header
                    break
        return found

    def missing(self, headers: list[str]) -> list[str]:
        """Documented headers of the required columns the file lacks."""
        present = self.column_for(headers)
        return [c.headers[0] for c in self.columns if c.required and c.name not in present]


@dataclass(frozen=True)
class TableMap:
    """How a system fills one contract table: a SELECT (Jinja-rendered SQL) over its
    layouts, made only when one of `needs` is in the export."""

    table: str
    sql: str
    needs: tuple[str, ...]
    python: Path | None = None  # a hook module whose `select(layouts)` returns the SELECT


@dataclass(frozen=True)
class System:
    name: str
    title: str
    path: Path
    precedence: int
    layouts: dict[str, Layout]
    tables: dict[str, TableMap]
    maps: dict[str, dict[str, str | None]] = field(default_factory=dict)
    new_customer_id: str = DEFAULT_NEW_ID
    new_customer_id_by_email: str = DEFAULT_NEW_ID_BY_EMAIL
    description: str = ""


def _fail(folder: Path, message: str) -> SourceSpecError:
    return SourceSpecError(f"source system {folder}: {message}")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _column(folder: Path, layout: str, name: str, spec: Any) -> LayoutColumn:
    if not NAME_RE.match(name):
        raise _fail(folder, f"layout {layout}: column name {name!r} is not snake_case")
    if not isinstance(spec, Mapping):
        spec = {"headers": spec}
    unknown = set(spec) - {"headers", "required", "type", "format", "decimal_comma"}
    if unknown:
        raise _fail(folder, f"layout {layout}, column {name}: unknown keys {sorted(unknown)}")
    headers = tuple(str(h) for h in _as_list(spec.get("headers")))
    if not headers:
        raise _fail(folder, f"layout {layout}, column {name}: no headers")
    typ = spec.get("type", "text")
    if typ not in COLUMN_TYPES:
        raise _fail(folder, f"layout {layout}, column {name}: unknown type {typ!r}")
    formats = tuple(str(f) for f in _as_list(spec.get("format")))
    if formats and typ not in ("date", "timestamp"):
        raise _fail(folder, f"layout {layout}, column {name}: a format needs a date type")
    return LayoutColumn(
        name,
        headers,
        bool(spec.get("required", False)),
        typ,
        formats,
        bool(spec.get("decimal_comma", False)),
    )


def _layout(folder: Path, system: str, name: str, spec: Mapping) -> Layout:
    if not NAME_RE.match(name):
        raise _fail(folder, f"layout name {name!r} is not snake_case")
    columns = tuple(
        _column(folder, name, col, col_spec)
        for col, col_spec in (spec.get("columns") or {}).items()
    )
    if not any(c.required for c in columns):
        raise _fail(folder, f"layout {name}: no required column, so it cannot be recognised")
    seen: dict[str, str] = {}
    for col in columns:
        for key in col.keys:
            if key in seen and seen[key] != col.name:
                raise _fail(folder, f"layout {name}: header {key!r} in {seen[key]} and {col.name}")
            seen[key] = col.name
    skip = tuple(SkipRule(str(r["reason"]), str(r["when"])) for r in spec.get("skip") or [])
    return Layout(
        system=system,
        name=name,
        title=str(spec.get("title", name)),
        file=str(spec.get("file", "")),
        columns=columns,
        skip=skip,
        strip_leading_apostrophe=bool(spec.get("strip_leading_apostrophe", False)),
    )


def _table_map(folder: Path, layouts: Mapping[str, Layout], table: str, spec: Mapping) -> TableMap:
    if table not in TABLES:
        raise _fail(folder, f"tables: {table!r} is not a contract table")
    needs = tuple(_as_list(spec.get("needs") or spec.get("from")))
    if not needs:
        raise _fail(folder, f"tables.{table}: say which layouts it needs (needs: or from:)")
    for layout in needs:
        if layout not in layouts:
            raise _fail(folder, f"tables.{table}: unknown layout {layout!r}")
    kinds = [k for k in ("sql", "select", "python") if k in spec]
    if len(kinds) != 1:
        raise _fail(folder, f"tables.{table}: give exactly one of sql, select, python")
    python = None
    if "sql" in spec:
        path = folder / str(spec["sql"])
        if not path.is_file():
            raise _fail(folder, f"tables.{table}: {path.name} not found")
        sql = path.read_text(encoding="utf-8")
    elif "python" in spec:
        python = folder / str(spec["python"])
        if not python.is_file():
            raise _fail(folder, f"tables.{table}: {python.name} not found")
        sql = ""
    else:
        if "from" not in spec or len(needs) != 1:
            raise _fail(folder, f"tables.{table}: select: needs one layout in from:")
        select = spec["select"] or {}
        allowed = set(TABLES[table].column_names) | set(OPTIONAL_OUTPUTS)
        allowed |= {c.name + s for c in TABLES[table].columns for s in REF_SUFFIXES}
        for out in select:
            if out not in allowed:
                raise _fail(folder, f"tables.{table}.select: {out!r} is not a contract column")
        items = [f"{expr} AS {out}" for out, expr in select.items()]
        items += list(LINEAGE_COLUMNS)
        sql = f"SELECT {', '.join(items)} FROM {needs[0]}"
    return TableMap(table, sql, needs, python)


def load_system(folder: Path) -> System:
    """Read and check one system folder."""
    path = folder / SYSTEM_FILE
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(folder, f"{SYSTEM_FILE} cannot be read: {exc}") from exc
    name = str(spec.get("system", folder.name))
    if not NAME_RE.match(name) or name == CONTRACT_SOURCE:
        raise _fail(folder, f"system name {name!r} is not a usable name")
    layouts = {
        lname: _layout(folder, name, lname, lspec)
        for lname, lspec in (spec.get("layouts") or {}).items()
    }
    if not layouts:
        raise _fail(folder, "no layouts")
    tables = {
        t: _table_map(folder, layouts, t, tspec) for t, tspec in (spec.get("tables") or {}).items()
    }
    maps = {
        str(m): {str(k).strip().lower(): (None if v is None else str(v)) for k, v in values.items()}
        for m, values in (spec.get("maps") or {}).items()
    }
    ids = spec.get("customer_ids") or {}
    return System(
        name=name,
        title=str(spec.get("title", name)),
        path=folder,
        precedence=int(spec.get("precedence", 100)),
        layouts=layouts,
        tables=tables,
        maps=maps,
        new_customer_id=str(ids.get("new", DEFAULT_NEW_ID)),
        new_customer_id_by_email=str(ids.get("new_by_email", DEFAULT_NEW_ID_BY_EMAIL)),
        description=str(spec.get("description", "")),
    )
