"""The analysts' report: `<out>/<as_of_date>/report.html` (inline CSS and SVG, no script),
`<out>/<as_of_date>/<table>.parquet` per marts table, and `<out>/latest.html`, from the marts
of the published warehouse only.  Same warehouse, same bytes: no clock, fixed orderings and
number formats.  The page shows aggregates only, never a customer's row.
"""

import html
import math
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
from dagster import AssetKey, MaterializeResult, MetadataValue, asset

from pipelines.resources import Settings, WarehouseResource, _absolute

# Extracts are ordered by each table's key (the dbt uniqueness tests); others by every column.
TABLE_KEYS = {"customer_features": "customer_id", "customer_segments": "customer_id",
              "segment_profiles": "segment_id", "referral_roi_by_segment": "segment_id",
              "referral_roi_by_segment_monthly": "segment_id, month",
              "top_referrers": "referrer_rank, customer_id",
              "segment_history": "as_of_date, customer_id",
              "segment_migrations": "to_as_of_date, from_as_of_date, from_segment_id, "
                                    "to_segment_id"}
# Short forms of ../shared/spec/metrics.md, shown in the page's "Definitions" section.
DEFINITIONS = {
    "as_of": ("As-of date", "Date of the newest CRM export; windows and ages count from it."),
    "customers": ("Customers", "Customers in the segment in the latest run."),
    "share": ("Share", "The segment's customers / all customers."),
    "persona": ("Persona", "Profile of the segment's average customer."),
    "incentive": ("Recommended incentive", "Referral incentive suited to the profile."),
    "share_rate": ("Share rate", "Referrers (customers with a counted referral) / customers."),
    "referrals_sent": ("Referrals sent", "Counted referrals of any status; self-referrals and "
                       "duplicate conversions are excluded everywhere."),
    "referrals_converted": ("Referrals converted", "Attributed converted referrals (a "
                            "referee counts once, for its earliest conversion)."),
    "conversion_rate": ("Conversion rate", "Referrals converted / referrals sent."),
    "referred_revenue": ("Referred revenue", "Completed orders of attributed referees in the "
                         "attribution window (default 365 days) after conversion."),
    "total_cost": ("Total cost", "Referrer + referee rewards of converted referrals, plus "
                   "programme costs allocated to segments by referrals sent."),
    "roi": ("ROI", "(Referred revenue x gross margin - total cost) / total cost; n/a when "
            "the total cost is 0."),
    "referral_cac": ("Referral CAC", "Total cost / referred customers."),
    "paid_cac": ("Paid CAC", "Marketing spend / new customers from paid marketing."),
    "clv_12m": ("12-month CLV", "Mean net revenue in the first 365 days after the first "
                "purchase, of customers who first bought 365+ days before the as-of date."),
    "monthly": ("Referrals per month", "Referrals by the month they were sent; converted = "
                "those of them that converted (cohort), whenever that happened."),
    "low_confidence": ("Low confidence", "Fewer converted referrals than the threshold "
                       "(default 30): read the segment's ratios with care."),
    "migration": ("Segment migration", "Customers per (previous, current) segment between "
                  "the two latest runs, and their share of the previous segment."),
}
PALETTE = {"a": "#3b6ea5", "b": "#e39b3b", "pos": "#3e8e5e", "neg": "#c0504d"}
CSS = """body{font-family:system-ui,sans-serif;color:#222;max-width:1080px;margin:24px auto;
padding:0 16px;line-height:1.45}h1{font-size:1.6em;margin-bottom:4px}.sub{color:#666;margin:0}
h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}a{color:#2a5d94}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(205px,1fr));gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;background:#fafafa}
.card .v{font-size:1.25em;font-weight:600}.card .k{color:#555;font-size:.85em}.flag{color:#9a5b00}
table{border-collapse:collapse;font-size:.85em;width:100%}th{background:#f3f3f3}
th,td{border-bottom:1px solid #e3e3e3;padding:5px 6px;text-align:left;vertical-align:top}
td:first-child{min-width:120px}td.n{text-align:right;white-space:nowrap}.v,td.n{font-variant-numeric:
tabular-nums}svg{max-width:100%;height:auto}svg text{font-size:12px}dt{font-weight:600}
h2 small{font-size:.6em;font-weight:400}"""


@dataclass(frozen=True)
class ReportResult:
    """What `build_report` wrote, and the headline numbers for run metadata."""

    as_of_date: date
    report_path: Path
    latest_path: Path
    extracts: dict[str, Path]
    extract_rows: dict[str, int]
    customers: int
    segments: int
    overall_roi: float | None

    def metadata(self) -> dict:
        return {"report": MetadataValue.path(str(self.report_path)),
                "latest": MetadataValue.path(str(self.latest_path)),
                "as_of_date": self.as_of_date.isoformat(), "customers": self.customers,
                "segments": self.segments, "overall_roi": self.overall_roi,
                "extract_rows": MetadataValue.json(self.extract_rows)}


# -- formatting ------------------------------------------------------------------------
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


# -- svg -------------------------------------------------------------------------------
def _el(tag: str, content: str | None = None, **attrs) -> str:
    """One SVG element; `text_anchor=` -> text-anchor; numbers at fixed precision."""
    a = "".join(f' {k.replace("_", "-")}="{_c(v) if isinstance(v, int | float) else _e(v)}"'
                for k, v in attrs.items())
    return f"<{tag}{a}/>" if content is None else f"<{tag}{a}>{_e(content)}</{tag}>"


def _t(x, y, s, anchor="start", **attrs) -> str:
    return _el("text", s, x=x, y=y, text_anchor=anchor, **attrs)


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg viewBox="0 0 {_c(width)} {_c(height)}" width="{_c(width)}" role="img" '
            f'aria-label="{_e(title)}"><title>{_e(title)}</title>{"".join(body)}</svg>')


def _legend(x: float, y: float, series: list[tuple[str, str]]) -> list[str]:
    out = []
    for name, color in series:
        out += [_el("rect", x=x, y=y - 10, width=12, height=12, fill=color), _t(x + 16, y, name)]
        x += 24 + 7 * len(name)
    return out


def hbar_chart(title: str, labels: list[str], series: list[tuple[str, list, str]],
               fmt, axis_label: str, colour_sign: bool = False) -> str:
    """Horizontal bars, one group per label; zero line; values at bar ends; NULL = 'n/a'."""
    width, label_w, bar_h = 760, 250, 16
    row_h, top = 10 + bar_h * len(series), 30 if len(series) > 1 else 12
    values = [float(v) for _, vals, _ in series for v in vals if not _missing(v)]
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
        body.append(_t(label_w, y + row_h / 2 + 4, _short(label), "end"))
        for j, (_, vals, color) in enumerate(series):
            v, by = vals[i], y + 5 + j * bar_h
            if _missing(v):
                body.append(_t(zero + 4, by + bar_h - 4, "n/a", fill="#777"))
                continue
            v = float(v)
            fill = (PALETTE["neg"] if v < 0 else PALETTE["pos"]) if colour_sign else color
            body += [_el("rect", x=min(sx(v), zero), y=by, width=abs(sx(v) - zero),
                         height=bar_h - 3, fill=fill),
                     _t(sx(v) + (-4 if v < 0 else 4), by + bar_h - 5, fmt(v),
                        "end" if v < 0 else "start")]
    body += [_el("line", x1=zero, y1=top, x2=zero, y2=bottom, stroke="#444"),
             _t(x0 + plot_w / 2, bottom + 22, axis_label, "middle", font_style="italic")]
    return _svg(width, bottom + 32, title, body)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(v))
    return next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= v)


def line_chart(title: str, months: list[date], series: list[tuple[str, list, str]],
               y_label: str, x_label: str) -> str:
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
        body += [_el("line", x1=left, y1=sy(t), x2=left + plot_w, y2=sy(t), stroke="#e3e3e3"),
                 _t(left - 6, sy(t) + 4, _num(t, 0 if hi >= 4 else 1), "end")]
    every = max(1, math.ceil(n / 12))
    for i in [i for i in range(n) if i % every == 0 or i == n - 1]:
        body += [_el("line", x1=sx(i), y1=axis_y, x2=sx(i), y2=axis_y + 4, stroke="#444"),
                 _t(sx(i), axis_y + 18, months[i].strftime("%Y-%m"), "middle")]
    for _, vals, color in series:
        points = " ".join(f"{_c(sx(i))},{_c(sy(v))}" for i, v in enumerate(vals))
        body.append(_el("polyline", points=points, fill="none", stroke=color, stroke_width=2))
        body += [_el("circle", cx=sx(i), cy=sy(v), r=2.5, fill=color)
                 for i, v in enumerate(vals)]
    mid = top + plot_h / 2
    body += [_el("line", x1=left, y1=axis_y, x2=left + plot_w, y2=axis_y, stroke="#444"),
             _t(left + plot_w / 2, height - 12, x_label, "middle", font_style="italic"),
             _t(14, mid, y_label, "middle", font_style="italic",
                transform=f"rotate(-90 14 {_c(mid)})")]
    return _svg(width, height, title, body)


def migration_chart(title: str, rows: list[dict]) -> str:
    """Matrix previous segment (rows) x current segment (columns): count and share of row."""
    froms = sorted({(r["from_segment_id"], r["from_segment_name"]) for r in rows})
    tos = sorted({r["to_segment_id"] for r in rows})
    cells = {(r["from_segment_id"], r["to_segment_id"]): r for r in rows}
    label_w, cell_w, cell_h, top = 270, 84, 38, 44
    body = [_t(label_w + cell_w * len(tos) / 2, 14, "current segment", "middle",
               font_style="italic"),
            _t(label_w - 8, top - 10, "previous segment", "end", font_style="italic")]
    body += [_t(label_w + cell_w * (j + 0.5), top - 10, _short(t, 12), "middle")
             for j, t in enumerate(tos)]
    for i, (fid, fname) in enumerate(froms):
        y = top + i * cell_h
        label = fname if fid.lower() == fname.lower() else f"{fid} {fname}"
        label = "(none): new customers" if fid == "(none)" else label
        body.append(_t(label_w - 8, y + cell_h / 2 + 4, _short(label, 38), "end"))
        for j, tid in enumerate(tos):
            x, r = label_w + j * cell_w, cells.get((fid, tid))
            share = 0.0 if r is None or _missing(r["share_of_from"]) else r["share_of_from"]
            body.append(_el("rect", x=x, y=y, width=cell_w, height=cell_h,
                            fill=f"rgba(59,110,165,{share:.3f})", stroke="#222" if fid == tid
                            else "#fff", stroke_width=1.5 if fid == tid else 1))
            if r is not None:
                fill = "#fff" if share > 0.55 else "#222"
                body += [_t(x + cell_w / 2, y + 16, _int(r["customers"]), "middle", fill=fill,
                            font_weight="600"),
                         _t(x + cell_w / 2, y + 31, _pct(share), "middle", fill=fill)]
    return _svg(label_w + cell_w * len(tos) + 10, top + cell_h * len(froms) + 8, title, body)


# -- data ------------------------------------------------------------------------------
def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _load(con: duckdb.DuckDBPyConnection) -> dict:
    return {
        "overall": _rows(con, "SELECT * FROM marts.referral_roi_by_segment "
                              "WHERE segment_id = 'all'")[0],
        "segments": _rows(con, """
            SELECT p.segment_id, p.segment_name, p.customers, p.share, p.persona,
                   p.recommended_incentive, r.share_rate, r.referral_conversion_rate, r.roi,
                   r.low_confidence, r.clv_12m_referred, r.clv_12m_nonreferred
            FROM marts.segment_profiles p
            LEFT JOIN marts.referral_roi_by_segment r USING (segment_id)
            ORDER BY p.customers DESC, p.segment_id"""),
        "monthly": _rows(con, """
            WITH m AS (SELECT month, referrals_sent, referrals_converted
                       FROM marts.referral_roi_by_segment_monthly WHERE segment_id = 'all'),
            s AS (SELECT unnest(generate_series(min(month), max(month), INTERVAL 1 MONTH))
                         ::DATE AS month FROM m)
            SELECT s.month, coalesce(m.referrals_sent, 0) AS sent,
                   coalesce(m.referrals_converted, 0) AS converted
            FROM s LEFT JOIN m USING (month) WHERE s.month IS NOT NULL ORDER BY s.month"""),
        "migrations": _rows(con, """
            SELECT * FROM marts.segment_migrations WHERE is_latest
            ORDER BY from_segment_id, to_segment_id"""),
    }


def _export(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> tuple[Path, int]:
    """COPY marts.<table> ordered by its key to <table>.parquet (via a temporary name)."""
    path, tmp = folder / f"{table}.parquet", folder / f".{table}.parquet.tmp"
    order = TABLE_KEYS.get(table, "ALL")
    target = str(tmp).replace("'", "''")
    rows = con.execute(f'COPY (SELECT * FROM marts."{table}" ORDER BY {order}) '
                       f"TO '{target}' (FORMAT parquet)").fetchone()[0]
    os.replace(tmp, path)
    return path, int(rows)


# -- html ------------------------------------------------------------------------------
def _def_link(key: str, text: str | None = None) -> str:
    return f'<a href="#def-{key}">{_e(text or DEFINITIONS[key][0])}</a>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """Cells are HTML already (escaped by the caller); `numeric` columns align right."""
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return (f"<table><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _cards(o: dict, segments: int, currency: str) -> str:
    money = f" {currency}" if currency else ""
    items = [("customers", _int(o["customers"])), ("segments", _int(segments)),
             ("referrals_sent", _int(o["referrals_sent"])),
             ("referrals_converted", _int(o["referrals_converted"])),
             *[(k, _num(o[k]) + money) for k in ("referred_revenue", "total_cost")],
             ("roi", _num(o["roi"])),
             *[(k, _num(o[k]) + money) for k in ("referral_cac", "paid_cac")]]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{_e(v)}</div><div class="k">'
        f'{_def_link(k) if k in DEFINITIONS else "Segments"}</div></div>'
        for k, v in items) + "</div>"


def _segment_table(segments: list[dict]) -> str:
    keys = ("customers", "share", "persona", "incentive", "share_rate", "conversion_rate",
            "roi", "low_confidence")
    rows = [[f'{_e(s["segment_name"])}<br><small>{_e(s["segment_id"])}</small>',
             _int(s["customers"]), _pct(s["share"]), _e(s["persona"] or ""),
             _e(s["recommended_incentive"] or ""), _pct(s["share_rate"]),
             _pct(s["referral_conversion_rate"]), _num(s["roi"]),
             '<span class="flag">low</span>' if s["low_confidence"] else ""] for s in segments]
    return _table(["Segment", *map(_def_link, keys)], rows, {1, 2, 5, 6, 7})


def _charts(data: dict, currency: str) -> list[tuple[str, str, str]]:
    """(heading, definition key, svg) per chart; the migration matrix needs two runs."""
    segs, total = data["segments"], max(int(data["overall"]["customers"]), 1)
    names, money = [s["segment_name"] for s in segs], f" ({currency})" if currency else ""
    charts = [
        ("Segment sizes", "customers", hbar_chart("Customers per segment", names, [
            ("customers", [s["customers"] for s in segs], PALETTE["a"])],
            lambda v: f"{_int(v)} ({_pct(v / total)})", "customers (share of all customers)")),
        ("Referral ROI by segment", "roi", hbar_chart("ROI by segment", names, [
            ("ROI", [s["roi"] for s in segs], PALETTE["a"])], _num,
            "ROI = (referred revenue x margin - total cost) / total cost; 0 = break-even",
            colour_sign=True)),
        ("12-month CLV: referred vs non-referred", "clv_12m", hbar_chart(
            "12-month CLV, referred vs non-referred customers", names, [
                ("referred", [s["clv_12m_referred"] for s in segs], PALETTE["a"]),
                ("non-referred", [s["clv_12m_nonreferred"] for s in segs], PALETTE["b"])],
            _num, f"mean net revenue in the first 365 days after the first purchase{money}"))]
    if months := data["monthly"]:
        charts.append(("Referrals per month", "monthly", line_chart(
            "Referrals sent per month and how many converted", [m["month"] for m in months],
            [("sent", [m["sent"] for m in months], PALETTE["a"]),
             ("converted", [m["converted"] for m in months], PALETTE["b"])],
            "referrals", "month the referral was sent (converted = of those sent that month)")))
    if migrations := data["migrations"]:
        heading = (f"Segment migrations {migrations[0]['from_as_of_date']} \u2192 "
                   f"{migrations[0]['to_as_of_date']}")
        charts.append((heading, "migration", migration_chart(
            "Customers per previous and current segment", migrations)))
    return charts


def render_html(data: dict, as_of: date, extracts: dict[str, int], currency: str = "") -> str:
    """The whole page as one string (pure: same data, same bytes)."""
    o, segs = data["overall"], data["segments"]
    parts = [f"<h1>Referral programme report \u2014 as of {_e(as_of.isoformat())}</h1>",
             '<p class="sub">Customer segments and referral ROI from the published warehouse '
             f"({_def_link('as_of', 'as-of date')} {_e(as_of.isoformat())}"
             + (f"; amounts in {_e(currency)}" if currency else "") + ").</p>",
             "<h2>Headline</h2>", _cards(o, len(segs), currency),
             "<h2>Segments</h2>", _segment_table(segs)]
    for heading, key, svg in _charts(data, currency):
        parts += [f"<h2>{_e(heading)} <small>({_def_link(key, 'definition')})</small></h2>", svg]
    if not data["migrations"]:
        parts += ["<h2>Segment migrations</h2>",
                  "<p>No migrations yet: they need two runs of the pipeline.</p>"]
    parts += ["<h2>Parquet extracts</h2>", f"<p>In the folder {_e(as_of.isoformat())}/ "
              "next to this report's dated copy, one file per marts table:</p>",
              _table(["file", "rows"], [[f"{_e(t)}.parquet", _int(n)]
                                        for t, n in extracts.items()], {1}),
              "<h2>Definitions</h2><dl>" + "".join(
                  f'<dt id="def-{k}">{_e(name)}</dt><dd>{_e(text)}</dd>'
                  for k, (name, text) in DEFINITIONS.items()) + "</dl>"]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Referral programme report {_e(as_of.isoformat())}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_report(warehouse_path: Path, out_dir: Path, currency: str = "") -> ReportResult:
    """Write the dated report, the Parquet extracts and latest.html; see the module doc."""
    warehouse_path = Path(warehouse_path)
    if not warehouse_path.exists():
        raise FileNotFoundError(f"No published warehouse at {warehouse_path}")
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        as_of = con.execute("SELECT max(as_of_date) FROM marts.segment_profiles").fetchone()[0]
        if as_of is None:
            raise ValueError(f"{warehouse_path}: marts.segment_profiles is empty")
        folder = Path(out_dir) / as_of.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
            "ORDER BY table_name").fetchall()]
        written = {t: _export(con, t, folder) for t in tables}
        data = _load(con)
    finally:
        con.close()
    rows = {t: n for t, (_, n) in written.items()}
    report, latest = folder / "report.html", Path(out_dir) / "latest.html"
    page = render_html(data, as_of, rows, currency)
    _write_text(report, page)
    _write_text(latest, page)  # the same bytes: the newest report at a fixed address
    roi = data["overall"]["roi"]
    return ReportResult(
        as_of_date=as_of, report_path=report, latest_path=latest,
        extracts={t: p for t, (p, _) in written.items()}, extract_rows=rows,
        customers=int(data["overall"]["customers"]), segments=len(data["segments"]),
        overall_roi=None if _missing(roi) else round(float(roi), 6))


@asset(
    key=AssetKey(["reports", "referral_roi"]),
    deps=[AssetKey(["warehouse", "published"])],
    group_name="publish",
    kinds={"html", "parquet"},
    description="HTML report with charts and Parquet extracts of every marts table, from the "
    "published warehouse, in REPORTS_DIR/<as_of_date>/ (and REPORTS_DIR/latest.html).",
)
def report_asset(warehouse: WarehouseResource) -> MaterializeResult:
    """Analysts' report of the night's published warehouse."""
    out_dir = _absolute(os.getenv("REPORTS_DIR", "data/reports"))  # like WAREHOUSE_PATH
    result = build_report(warehouse.published_path, out_dir,
                          currency=Settings.from_env().base_currency)
    return MaterializeResult(metadata=result.metadata())
