"""Value formatting for the report: HTML escaping, fixed-precision numbers, labels."""

import html
import math


def escape_html(value) -> str:
    return html.escape(str(value), quote=True)


def is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_num(v, digits: int = 2) -> str:
    """Fixed decimals with thousands separators; never '-0.00'; NULL is 'n/a'."""
    return "n/a" if is_missing(v) else f"{round(float(v), digits) + 0.0:,.{digits}f}"


def fmt_pct(v) -> str:
    return "n/a" if is_missing(v) else f"{round(float(v) * 100, 1) + 0.0:.1f}%"


def fmt_int(v) -> str:
    return "n/a" if is_missing(v) else f"{int(v):,}"


def svg_num(x: float) -> str:
    """SVG number at fixed precision, so the bytes never depend on float noise."""
    return f"{x:.1f}"


def short_label(label: str, width: int = 34) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"
