"""Tables held as dicts of numpy columns, and the operations on whole rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def concat(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in cols.items()}


def with_row_numbers(
    cols: dict[str, np.ndarray], first_id: int = 1, key: str = "ts"
) -> dict[str, np.ndarray]:
    """The rows sorted by `key` (stable) with ids `first_id`, `first_id` + 1, ... in that
    order: ids follow time, as in a real CRM."""
    cols = _take(cols, np.argsort(cols[key], kind="stable"))
    cols["id"] = first_id + np.arange(len(cols[key]), dtype=np.int64)
    return cols


def append_numbered(
    cols: dict[str, np.ndarray], new: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """A numbered table with the rows `new` appended, numbered on (see `with_row_numbers`)."""
    first_id = int(cols["id"][-1]) + 1 if len(cols["id"]) else 1
    return concat([cols, with_row_numbers(new, first_id)])
