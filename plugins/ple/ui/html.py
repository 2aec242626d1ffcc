"""Server-rendered HTML: a page frame, tables and inline-SVG charts. No script, no CDN: the
pages work on machines without internet access and inside the Airflow UI's frame."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2937;background:#fff}
header{background:#0f172a;color:#f8fafc;padding:10px 20px;display:flex;gap:18px;align-items:baseline;flex-wrap:wrap}
header a{color:#cbd5e1;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .who{margin-left:auto;color:#94a3b8;font-size:12px}
main{padding:12px 20px 40px}h1{font-size:20px;margin:8px 0 4px}h2{font-size:16px;margin:22px 0 6px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}td,th{border:1px solid #e5e7eb;padding:3px 8px;vertical-align:top}
th{background:#f1f5f9;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#166534}.bad{color:#b91c1c;font-weight:600}.muted{color:#6b7280}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#f8fafc;border:1px solid #e5e7eb;padding:6px;white-space:pre-wrap;margin:2px 0;max-width:900px}
details summary{cursor:pointer;color:#1d4ed8}.charts{display:flex;flex-wrap:wrap;gap:14px}
.chart{border:1px solid #e5e7eb;padding:6px 8px}.chart h3{font-size:13px;margin:0 0 4px}
"""

NAV = (
    ("reorganization", "CTB reorganization"),
    ("data-quality", "Data quality"),
    ("dol-imports", "DOL imports"),
    ("compatibility", "Old names"),
    ("data-docs/index.html", "Data Docs"),
)


def page(title: str, current: str, user: str, body: str) -> str:
    links = " ".join(
        f'<a href="{route}"' + (' class="on"' if route == current else "") + f">{escape(label)}</a>"
        for route, label in NAV
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · PLE</title>'
        f'<link rel="icon" href="data:,"><style>{STYLE}</style></head><body>'
        f"<header><strong>PLE console</strong>{links}<span class='who'>signed in as {escape(user)} · read-only</span></header>"
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return f"<code>{escape(json.dumps(value, default=str))}</code>"
    return escape(str(value))


def table(headers: tuple[str, ...], rows: list[tuple], raw: tuple[str, ...] = (), empty: str = "nothing yet") -> str:
    """Rows as an HTML table; numbers right-aligned; columns named in `raw` are HTML already;
    `empty` says what an empty table means (said of the table itself, not of the page)."""
    if not rows:
        return f"<p class='muted'>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        tds = []
        for header, value in zip(headers, row, strict=True):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            content = value if header in raw else cell(value)
            tds.append(f"<td{' class=n' if numeric else ''}>{content}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def pre(text: str | None, summary: str = "SQL") -> str:
    if not text:
        return ""
    return f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"


def line_chart(
    title: str, points: list[tuple[datetime, int]], low: float | None = None, high: float | None = None
) -> str:
    """One number over time as inline SVG, its threshold as a dashed red line."""
    width, height, pad = 320, 130, 28
    values = [v for _, v in points] + [b for b in (low, high) if b is not None]
    top, bottom = max([*values, 1]), min([*values, 0])
    span = (top - bottom) or 1

    def y(value: float) -> float:
        return height - pad - (value - bottom) / span * (height - 2 * pad)

    def x(index: int) -> float:
        return pad + (index / max(len(points) - 1, 1)) * (width - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#cbd5e1"/>',
        f'<text x="2" y="{y(top) + 4:.1f}" font-size="10" fill="#6b7280">{top:,.0f}</text>',
        f'<text x="2" y="{y(bottom) + 4:.1f}" font-size="10" fill="#6b7280">{bottom:,.0f}</text>',
    ]
    for bound, label in ((low, "min"), (high, "max")):
        if bound is not None:
            parts.append(
                f'<line x1="{pad}" y1="{y(bound):.1f}" x2="{width - pad}" y2="{y(bound):.1f}" stroke="#dc2626" stroke-dasharray="4 3"/>'
                f'<text x="{width - pad + 2}" y="{y(bound) + 3:.1f}" font-size="10" fill="#dc2626">{label}</text>'
            )
    if points:
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2563eb" stroke-width="2"/>')
        for i, (when, v) in enumerate(points):
            broken = (high is not None and v > high) or (low is not None and v < low)
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{"#dc2626" if broken else "#2563eb"}">'
                f"<title>{cell(when)}: {v:,}</title></circle>"
            )
        parts.append(
            f'<text x="{pad}" y="{height - 8}" font-size="10" fill="#6b7280">{cell(points[0][0])}</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="10" fill="#6b7280" text-anchor="end">{cell(points[-1][0])}</text>'
        )
    parts.append("</svg>")
    latest = f"{points[-1][1]:,}" if points else "no runs"
    return f'<div class="chart"><h3>{escape(title)} <span class="muted">({latest})</span></h3>{"".join(parts)}</div>'
