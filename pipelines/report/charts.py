"""Inline SVG charts of the report (fixed precision, so the same data gives the same bytes)."""

import math
from datetime import date

from pipelines.report.fmt import (
    escape_html,
    fmt_int,
    fmt_num,
    fmt_pct,
    is_missing,
    short_label,
    svg_num,
)

PALETTE = {"a": "#3b6ea5", "b": "#e39b3b", "pos": "#3e8e5e", "neg": "#c0504d"}


def _el(tag: str, content: str | None = None, **attrs) -> str:
    """One SVG element; `text_anchor=` -> text-anchor; numbers at fixed precision."""
    a = "".join(
        f' {k.replace("_", "-")}="{svg_num(v) if isinstance(v, int | float) else escape_html(v)}"'
        for k, v in attrs.items()
    )
    return f"<{tag}{a}/>" if content is None else f"<{tag}{a}>{escape_html(content)}</{tag}>"


def _t(x, y, s, anchor="start", **attrs) -> str:
    return _el("text", s, x=x, y=y, text_anchor=anchor, **attrs)


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {svg_num(width)} {svg_num(height)}" width="{svg_num(width)}" '
        f'role="img" '
        f'aria-label="{escape_html(title)}"><title>{escape_html(title)}</title>{"".join(body)}</svg>'
    )


def _legend(x: float, y: float, series: list[tuple[str, str]]) -> list[str]:
    out = []
    for name, color in series:
        out += [_el("rect", x=x, y=y - 10, width=12, height=12, fill=color), _t(x + 16, y, name)]
        x += 24 + 7 * len(name)
    return out


def hbar_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, list, str]],
    fmt,
    axis_label: str,
    colour_sign: bool = False,
) -> str:
    """Horizontal bars, one group per label; zero line; values at bar ends; NULL = 'n/a'."""
    width, label_w, bar_h = 760, 250, 16
    row_h, top = 10 + bar_h * len(series), 30 if len(series) > 1 else 12
    values = [float(v) for _, vals, _ in series for v in vals if not is_missing(v)]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    hi = hi if hi > lo else lo + 1.0
    x0 = label_w + 12 + 7 * max([len(fmt(v)) for v in values if v < 0] or [3])
    plot_w = width - x0 - 12 - 7 * max([len(fmt(v)) for v in values if v >= 0] or [3])

    def sx(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * plot_w

    zero, bottom = sx(0.0), top + row_h * len(labels)
    body = _legend(x0, 18, [(n, c) for n, _, c in series]) if len(series) > 1 else []
    for i, label in enumerate(labels):
        y = top + i * row_h
        body.append(_t(label_w, y + row_h / 2 + 4, short_label(label), "end"))
        for j, (_, vals, color) in enumerate(series):
            v, by = vals[i], y + 5 + j * bar_h
            if is_missing(v):
                body.append(_t(zero + 4, by + bar_h - 4, "n/a", fill="#777"))
                continue
            v = float(v)
            fill = (PALETTE["neg"] if v < 0 else PALETTE["pos"]) if colour_sign else color
            body += [
                _el(
                    "rect",
                    x=min(sx(v), zero),
                    y=by,
                    width=abs(sx(v) - zero),
                    height=bar_h - 3,
                    fill=fill,
                ),
                _t(
                    sx(v) + (-4 if v < 0 else 4),
                    by + bar_h - 5,
                    fmt(v),
                    "end" if v < 0 else "start",
                ),
            ]
    body += [
        _el("line", x1=zero, y1=top, x2=zero, y2=bottom, stroke="#444"),
        _t(x0 + plot_w / 2, bottom + 22, axis_label, "middle", font_style="italic"),
    ]
    return _svg(width, bottom + 32, title, body)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(v))
    return next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= v)


def line_chart(
    title: str, months: list[date], series: list[tuple[str, list, str]], y_label: str, x_label: str
) -> str:
    """Lines over months; y gridlines with counts; every k-th month labelled."""
    width, height, left, right, top, bottom = 760, 320, 64, 36, 34, 62
    plot_w, plot_h, n = width - left - right, height - top - bottom, len(months)
    hi = _nice_max(max([float(v) for _, vals, _ in series for v in vals] or [0.0]))

    def sx(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def sy(v: float) -> float:
        return top + plot_h * (1 - float(v) / hi)

    body, axis_y = _legend(left, 18, [(name, c) for name, _, c in series]), top + plot_h
    for t in (hi * k / 4 for k in range(5)):
        body += [
            _el("line", x1=left, y1=sy(t), x2=left + plot_w, y2=sy(t), stroke="#e3e3e3"),
            _t(left - 6, sy(t) + 4, fmt_num(t, 0 if hi >= 4 else 1), "end"),
        ]
    every = max(1, math.ceil(n / 12))
    for i in [i for i in range(n) if i % every == 0 or i == n - 1]:
        body += [
            _el("line", x1=sx(i), y1=axis_y, x2=sx(i), y2=axis_y + 4, stroke="#444"),
            _t(sx(i), axis_y + 18, months[i].strftime("%Y-%m"), "middle"),
        ]
    for _, vals, color in series:
        points = " ".join(f"{svg_num(sx(i))},{svg_num(sy(v))}" for i, v in enumerate(vals))
        body.append(_el("polyline", points=points, fill="none", stroke=color, stroke_width=2))
        body += [_el("circle", cx=sx(i), cy=sy(v), r=2.5, fill=color) for i, v in enumerate(vals)]
    mid = top + plot_h / 2
    body += [
        _el("line", x1=left, y1=axis_y, x2=left + plot_w, y2=axis_y, stroke="#444"),
        _t(left + plot_w / 2, height - 12, x_label, "middle", font_style="italic"),
        _t(
            14,
            mid,
            y_label,
            "middle",
            font_style="italic",
            transform=f"rotate(-90 14 {svg_num(mid)})",
        ),
    ]
    return _svg(width, height, title, body)


def migration_chart(title: str, rows: list[dict]) -> str:
    """Matrix previous segment (rows) x current segment (columns): count and share of row."""
    froms = sorted({(r["from_segment_id"], r["from_segment_name"]) for r in rows})
    tos = sorted({r["to_segment_id"] for r in rows})
    cells = {(r["from_segment_id"], r["to_segment_id"]): r for r in rows}
    label_w, cell_w, cell_h, top = 270, 84, 38, 44
    body = [
        _t(label_w + cell_w * len(tos) / 2, 14, "current segment", "middle", font_style="italic"),
        _t(label_w - 8, top - 10, "previous segment", "end", font_style="italic"),
    ]
    body += [
        _t(label_w + cell_w * (j + 0.5), top - 10, short_label(t, 12), "middle")
        for j, t in enumerate(tos)
    ]
    for i, (fid, fname) in enumerate(froms):
        y = top + i * cell_h
        label = fname if fid.lower() == fname.lower() else f"{fid} {fname}"
        label = "(none): new customers" if fid == "(none)" else label
        body.append(_t(label_w - 8, y + cell_h / 2 + 4, short_label(label, 38), "end"))
        for j, tid in enumerate(tos):
            x, r = label_w + j * cell_w, cells.get((fid, tid))
            share = 0.0 if r is None or is_missing(r["share_of_from"]) else r["share_of_from"]
            body.append(
                _el(
                    "rect",
                    x=x,
                    y=y,
                    width=cell_w,
                    height=cell_h,
                    fill=f"rgba(59,110,165,{share:.3f})",
                    stroke="#222" if fid == tid else "#fff",
                    stroke_width=1.5 if fid == tid else 1,
                )
            )
            if r is not None:
                fill = "#fff" if share > 0.55 else "#222"
                body += [
                    _t(
                        x + cell_w / 2,
                        y + 16,
                        fmt_int(r["customers"]),
                        "middle",
                        fill=fill,
                        font_weight="600",
                    ),
                    _t(x + cell_w / 2, y + 31, fmt_pct(share), "middle", fill=fill),
                ]
    return _svg(label_w + cell_w * len(tos) + 10, top + cell_h * len(froms) + 8, title, body)
