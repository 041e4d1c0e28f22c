"""The report page: CSS, the metric definitions, and the HTML of cards, tables and sections."""

import json
from datetime import date

from pipelines.report.charts import PALETTE, hbar_chart, line_chart, migration_chart
from pipelines.report.fmt import escape_html, fmt_int, fmt_num, fmt_pct

# Short forms of docs/spec/metrics.md, shown in the page's "Definitions" section.
DEFINITIONS = {
    "as_of": ("As-of date", "Date of the newest CRM export; windows and ages count from it."),
    "customers": ("Customers", "Customers in the segment in the latest run."),
    "share": ("Share", "The segment's customers / all customers."),
    "persona": ("Persona", "Profile of the segment's average customer."),
    "incentive": ("Recommended incentive", "Referral incentive suited to the profile."),
    "share_rate": ("Share rate", "Referrers (customers with a counted referral) / customers."),
    "referrals_sent": (
        "Referrals sent",
        "Counted referrals of any status; self-referrals and "
        "duplicate conversions are excluded everywhere.",
    ),
    "referrals_converted": (
        "Referrals converted",
        "Attributed converted referrals (a referee counts once, for its earliest conversion).",
    ),
    "conversion_rate": ("Conversion rate", "Referrals converted / referrals sent."),
    "referred_revenue": (
        "Referred revenue",
        "Completed orders of attributed referees in the "
        "attribution window (default 365 days) after conversion.",
    ),
    "total_cost": (
        "Total cost",
        "Referrer + referee rewards of converted referrals, plus "
        "programme costs allocated to segments by referrals sent.",
    ),
    "roi": (
        "ROI",
        "(Referred revenue x gross margin - total cost) / total cost; n/a when "
        "the total cost is 0.",
    ),
    "referral_cac": ("Referral CAC", "Total cost / referred customers."),
    "paid_cac": ("Paid CAC", "Marketing spend / new customers from paid marketing."),
    "clv_12m": (
        "12-month CLV",
        "Mean net revenue in the first 365 days after the first "
        "purchase, of customers who first bought 365+ days before the as-of date.",
    ),
    "monthly": (
        "Referrals per month",
        "Referrals by the month they were sent; converted = "
        "those of them that converted (cohort), whenever that happened.",
    ),
    "low_confidence": (
        "Low confidence",
        "Fewer converted referrals than the threshold "
        "(default 30): read the segment's ratios with care.",
    ),
    "sources": (
        "Sources",
        "What each system's files of the newest export gave: data rows read, rows skipped "
        "by design (e.g. a Shopify order's later line items), customer rows merged into "
        "another system's row of the same person, rows quarantined and rows loaded.",
    ),
    "migration": (
        "Segment migration",
        "Customers per (previous, current) segment between "
        "the two latest runs, and their share of the previous segment.",
    ),
}
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


def _def_link(key: str, text: str | None = None) -> str:
    return f'<a href="#def-{key}">{escape_html(text or DEFINITIONS[key][0])}</a>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """Cells are HTML already (escaped by the caller); `numeric` columns align right."""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f"<table><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _cards(o: dict, segments: int, currency: str) -> str:
    money = f" {currency}" if currency else ""
    items = [
        ("customers", fmt_int(o["customers"])),
        ("segments", fmt_int(segments)),
        ("referrals_sent", fmt_int(o["referrals_sent"])),
        ("referrals_converted", fmt_int(o["referrals_converted"])),
        *[(k, fmt_num(o[k]) + money) for k in ("referred_revenue", "total_cost")],
        ("roi", fmt_num(o["roi"])),
        *[(k, fmt_num(o[k]) + money) for k in ("referral_cac", "paid_cac")],
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{escape_html(v)}</div><div class="k">'
            f"{_def_link(k) if k in DEFINITIONS else 'Segments'}</div></div>"
            for k, v in items
        )
        + "</div>"
    )


def _sources_table(sources: list[dict]) -> str:
    rows = [
        [
            escape_html(s["source_system"]),
            "<br>".join(escape_html(f) for f in sorted(json.loads(s["files"]))),
            *(
                fmt_int(s[k])
                for k in ("rows_read", "rows_skipped", "rows_merged", "rows_quarantined")
            ),
            fmt_int(s["rows_loaded"]),
        ]
        for s in sources
    ]
    head = ["system", "files", "read", "skipped", "merged", "quarantined", "loaded"]
    return _table(head, rows, {2, 3, 4, 5, 6})


def _segment_table(segments: list[dict]) -> str:
    keys = (
        "customers",
        "share",
        "persona",
        "incentive",
        "share_rate",
        "conversion_rate",
        "roi",
        "low_confidence",
    )
    rows = [
        [
            f"{escape_html(s['segment_name'])}<br><small>{escape_html(s['segment_id'])}</small>",
            fmt_int(s["customers"]),
            fmt_pct(s["share"]),
            escape_html(s["persona"] or ""),
            escape_html(s["recommended_incentive"] or ""),
            fmt_pct(s["share_rate"]),
            fmt_pct(s["referral_conversion_rate"]),
            fmt_num(s["roi"]),
            '<span class="flag">low</span>' if s["low_confidence"] else "",
        ]
        for s in segments
    ]
    return _table(["Segment", *map(_def_link, keys)], rows, {1, 2, 5, 6, 7})


def _charts(data: dict, currency: str) -> list[tuple[str, str, str]]:
    """(heading, definition key, svg) per chart; the migration matrix needs two runs."""
    segs, total = data["segments"], max(int(data["overall"]["customers"]), 1)
    names, money = [s["segment_name"] for s in segs], f" ({currency})" if currency else ""
    charts = [
        (
            "Segment sizes",
            "customers",
            hbar_chart(
                "Customers per segment",
                names,
                [("customers", [s["customers"] for s in segs], PALETTE["a"])],
                lambda v: f"{fmt_int(v)} ({fmt_pct(v / total)})",
                "customers (share of all customers)",
            ),
        ),
        (
            "Referral ROI by segment",
            "roi",
            hbar_chart(
                "ROI by segment",
                names,
                [("ROI", [s["roi"] for s in segs], PALETTE["a"])],
                fmt_num,
                "ROI = (referred revenue x margin - total cost) / total cost; 0 = break-even",
                colour_sign=True,
            ),
        ),
        (
            "12-month CLV: referred vs non-referred",
            "clv_12m",
            hbar_chart(
                "12-month CLV, referred vs non-referred customers",
                names,
                [
                    ("referred", [s["clv_12m_referred"] for s in segs], PALETTE["a"]),
                    ("non-referred", [s["clv_12m_nonreferred"] for s in segs], PALETTE["b"]),
                ],
                fmt_num,
                f"mean net revenue in the first 365 days after the first purchase{money}",
            ),
        ),
    ]
    if months := data["monthly"]:
        charts.append(
            (
                "Referrals per month",
                "monthly",
                line_chart(
                    "Referrals sent per month and how many converted",
                    [m["month"] for m in months],
                    [
                        ("sent", [m["sent"] for m in months], PALETTE["a"]),
                        ("converted", [m["converted"] for m in months], PALETTE["b"]),
                    ],
                    "referrals",
                    "month the referral was sent (converted = of those sent that month)",
                ),
            )
        )
    if migrations := data["migrations"]:
        heading = (
            f"Segment migrations {migrations[0]['from_as_of_date']} \u2192 "
            f"{migrations[0]['to_as_of_date']}"
        )
        charts.append(
            (
                heading,
                "migration",
                migration_chart("Customers per previous and current segment", migrations),
            )
        )
    return charts


def render_html(data: dict, as_of: date, extracts: dict[str, int], currency: str = "") -> str:
    """The whole page as one string (pure: same data, same bytes)."""
    o, segs = data["overall"], data["segments"]
    parts = [
        f"<h1>Referral programme report \u2014 as of {escape_html(as_of.isoformat())}</h1>",
        '<p class="sub">Customer segments and referral ROI from the published warehouse '
        f"({_def_link('as_of', 'as-of date')} {escape_html(as_of.isoformat())}"
        + (f"; amounts in {escape_html(currency)}" if currency else "")
        + ").</p>",
        "<h2>Headline</h2>",
        _cards(o, len(segs), currency),
        "<h2>Segments</h2>",
        _segment_table(segs),
    ]
    for heading, key, svg in _charts(data, currency):
        parts += [
            f"<h2>{escape_html(heading)} <small>({_def_link(key, 'definition')})</small></h2>",
            svg,
        ]
    if not data["migrations"]:
        parts += [
            "<h2>Segment migrations</h2>",
            "<p>No migrations yet: they need two runs of the pipeline.</p>",
        ]
    parts += [
        f"<h2>Sources of the newest export <small>({_def_link('sources', 'definition')})"
        "</small></h2>",
        _sources_table(data["sources"]),
        "<h2>Parquet extracts</h2>",
        f"<p>In the folder {escape_html(as_of.isoformat())}/ "
        "next to this report's dated copy, one file per marts table:</p>",
        _table(
            ["file", "rows"],
            [[f"{escape_html(t)}.parquet", fmt_int(n)] for t, n in extracts.items()],
            {1},
        ),
        "<h2>Definitions</h2><dl>"
        + "".join(
            f'<dt id="def-{k}">{escape_html(name)}</dt><dd>{escape_html(text)}</dd>'
            for k, (name, text) in DEFINITIONS.items()
        )
        + "</dl>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Referral programme report {escape_html(as_of.isoformat())}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
