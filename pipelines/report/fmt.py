"""Value formatting for the report: HTML escaping, fixed-precision numbers, labels."""

import html
import math


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v, digits: int = 2) -> str:
    """Fixed decimals with thousands separators; never '-0.00'; NULL is 'n/a'."""
    return "n/a" if _missing(v) else f"{round(float(v), digits) + 0.0:,.{digits}f}"


def _pct(v) -> str:
    return "n/a" if _missing(v) else f"{round(float(v) * 100, 1) + 0.0:.1f}%"


def _int(v) -> str:
    return "n/a" if _missing(v) else f"{int(v):,}"


def _c(x: float) -> str:
    """SVG number at fixed precision, so the bytes never depend on float noise."""
    return f"{x:.1f}"


def _short(label: str, width: int = 34) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"
