"""A static status page: one self-contained ``index.html`` (inline CSS, JS and SVG).

It loads nothing (a Content-Security-Policy forbids every fetch), so it can be published as a
CI artifact or on any static host. The table sorts by the URL fragment (``#sort=expiry``,
``#sort=-days``); clicking a header only changes the fragment, so a sorted view can be linked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

from sslm_ci.fsutil import atomic_write
from sslm_ci.report.status import ServiceStatus, count_line, health, renewal_time

PAGE_NAME = "index.html"

# Table columns: fragment key, header, numeric sort.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("state", "State", True),
    ("service", "Service", False),
    ("ca", "CA", False),
    ("expiry", "Expires (curr)", True),
    ("days", "Days left", True),
    ("renewal", "Renewal", True),
    ("next", "Next expires", True),
    ("roll", "Roll", False),
)
# Worst first when sorting by state.
_STATE_RANK = {"missing": 0, "expired": 1, "due": 2, "ok": 3}

_CSS = """
:root { color-scheme: light; --ok: #2e7d32; --due: #c77c00; --expired: #c62828;
        --missing: #6d6d6d; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; padding: 16px 24px 40px; max-width: 1400px; color: #1f2328;
       background: #fff; }
h1 { font-size: 22px; margin: 4px 0; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.summary { color: var(--muted); margin: 0; }
.summary b { color: #1f2328; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; white-space: nowrap; }
th a { color: inherit; text-decoration: none; display: block; }
th a::after { content: " \\2195"; color: #8c959f; }
th[aria-sort="ascending"] a::after { content: " \\25B2"; color: #1f2328; }
th[aria-sort="descending"] a::after { content: " \\25BC"; color: #1f2328; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { white-space: nowrap; }
td.when { white-space: nowrap; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; min-width: 64px; text-align: center; border-radius: 10px;
         padding: 0 8px; color: #fff; font-weight: 600; font-size: 12px; }
.badge.ok { background: var(--ok); } .badge.due { background: var(--due); }
.badge.expired { background: var(--expired); } .badge.missing { background: var(--missing); }
.due-text { color: var(--due); font-weight: 600; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
svg .tick line { stroke: #eaeef2; } svg .tick text { fill: var(--muted); }
svg .bar.ok { fill: var(--ok); } svg .bar.due { fill: var(--due); }
svg .bar.expired { fill: var(--expired); }
svg .none { fill: var(--missing); font-style: italic; }
svg .renew { fill: #1f2328; stroke: #fff; stroke-width: 1; }
svg .now line { stroke: #0969da; stroke-width: 2; stroke-dasharray: 5 3; }
svg .now text { fill: #0969da; font-weight: 600; }
.legend { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
.legend i { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px;
            vertical-align: baseline; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
"""

# Sorting lives in the fragment: load, click (a header is a link) and back/forward all go
# through apply(), so a test loading "#sort=expiry" exercises what a click does.
_JS = """
(() => {
  const table = document.getElementById("services");
  const body = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);
  const keys = heads.map((th) => th.dataset.key);
  Array.from(body.rows).forEach((row, i) => { row.dataset.index = String(i); });
  const compare = (a, b, col, numeric, desc) => {
    const va = a.cells[col].dataset.sort, vb = b.cells[col].dataset.sort;
    if (va === "" || vb === "") {  // no value: last in either direction
      return va === vb ? 0 : (va === "" ? 1 : -1);
    }
    const c = numeric ? Number(va) - Number(vb) : va.localeCompare(vb);
    return desc ? -c : c;
  };
  const apply = () => {
    const m = /^#sort=(-?)([a-z]+)$/.exec(window.location.hash);
    const col = m ? keys.indexOf(m[2]) : -1;
    const desc = Boolean(m && m[1] === "-");
    if (col >= 0) {
      const numeric = heads[col].dataset.type === "num";
      const rows = Array.from(body.rows);
      rows.sort((a, b) => compare(a, b, col, numeric, desc)
        || Number(a.dataset.index) - Number(b.dataset.index));
      rows.forEach((row) => body.appendChild(row));
    }
    heads.forEach((th, i) => {
      const on = i === col;
      th.setAttribute("aria-sort", on ? (desc ? "descending" : "ascending") : "none");
      th.querySelector("a").setAttribute("href", "#sort=" + (on && !desc ? "-" : "") + keys[i]);
    });
    document.body.dataset.sorted = col >= 0 ? (desc ? "-" : "") + keys[col] : "";
  };
  window.addEventListener("hashchange", apply);
  apply();
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _utc(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def _epoch(value: datetime | None) -> str:
    return "" if value is None else str(int(value.timestamp()))


def _when(value: datetime | None) -> str:
    if value is None:
        return "–"
    iso = value.astimezone(UTC).isoformat()
    return f'<time datetime="{escape(iso)}">{_utc(value)}</time>'


def _cell(content: str, sort: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-sort="{escape(sort)}">{content}</td>'


def _renewal(row: ServiceStatus) -> str:
    reason = escape(row.renew_reason)
    if row.renew_due:
        return f'<span class="due-text">DUE</span> ({reason})'
    if row.renew_at is not None:
        return f"{_when(row.renew_at)} ({reason})"
    return reason


def _row(row: ServiceStatus, now: datetime) -> str:
    state = health(row, now)
    days = f"{row.curr_days_left:.1f}" if row.curr_days_left is not None else ""
    cells = [
        _cell(f'<span class="badge {state}">{state}</span>', str(_STATE_RANK[state])),
        _cell(escape(row.ident), row.ident, "name"),
        _cell(escape(row.signing_ca), row.signing_ca, "name"),
        _cell(_when(row.curr_expires), _epoch(row.curr_expires), "when"),
        _cell(days or "–", days, "num"),
        _cell(_renewal(row), _epoch(renewal_time(row))),
        _cell(_when(row.next_expires), _epoch(row.next_expires), "when"),
        _cell("–" if row.roll_state == "-" else escape(row.roll_state), row.roll_state),
    ]
    return f'<tr class="{state}" data-ident="{escape(row.ident)}">' + "".join(cells) + "</tr>"


def _table(rows: Sequence[ServiceStatus], now: datetime) -> str:
    num = ' data-type="num"'
    heads = "".join(
        f'<th data-key="{key}"{num if numeric else ""} aria-sort="none">'
        f'<a href="#sort={key}">{escape(label)}</a></th>'
        for key, label, numeric in COLUMNS
    )
    body = "\n".join(_row(r, now) for r in rows)
    return (
        f'<table id="services">\n<thead><tr>{heads}</tr></thead>\n<tbody>\n{body}\n</tbody>\n'
        "</table>"
    )


# -- timeline ---------------------------------------------------------------------------------

_WIDTH = 1000
_LABEL_W = 250
_RIGHT = 24
_TOP = 34
_ROW_H = 24
_BAR_H = 12


@dataclass(frozen=True)
class _Scale:
    start: datetime
    end: datetime

    def x(self, when: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        frac = (when - self.start).total_seconds() / span
        return round(_LABEL_W + frac * (_WIDTH - _LABEL_W - _RIGHT), 1)


def _scale(rows: Sequence[ServiceStatus], now: datetime) -> _Scale:
    instants = [now, now + timedelta(days=1)]
    for row in rows:
        instants += [t for t in (row.curr_expires, renewal_time(row)) if t is not None]
    lo, hi = min(instants), max(instants)
    pad = (hi - lo) * 0.03
    return _Scale(lo - pad, hi + pad)


def _add_months(value: datetime, months: int) -> datetime:
    index = value.year * 12 + value.month - 1 + months
    return value.replace(year=index // 12, month=index % 12 + 1, day=1)


def ticks(start: datetime, end: datetime, most: int = 8) -> list[datetime]:
    """Calendar-aligned tick instants in [start, end]: whole days, weeks or months."""
    span_days = (end - start).total_seconds() / 86400
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for step in (1, 2, 7, 14):
        if span_days / step <= most:
            first = midnight if midnight >= start else midnight + timedelta(days=1)
            out, t = [], first
            while t <= end:
                out.append(t)
                t += timedelta(days=step)
            return out
    months = 1
    for months in (1, 2, 3, 6, 12, 24, 60):
        if span_days / (30.44 * months) <= most:
            break
    t = _add_months(midnight, 0 if midnight.day == 1 and midnight >= start else 1)
    while (t.month - 1) % months:
        t = _add_months(t, 1)
    out = []
    while t <= end:
        out.append(t)
        t = _add_months(t, months)
    return out


def _clip(label: str, most: int = 34) -> str:
    # The label column is fixed; the full name stays in the tooltip.
    return label if len(label) <= most else label[: most - 1] + "…"


def _timeline(rows: Sequence[ServiceStatus], now: datetime) -> str:
    scale = _scale(rows, now)
    ordered = sorted(
        rows,
        key=lambda r: (r.curr_expires is None, r.curr_expires or now, r.ident),
    )
    rows_end = _TOP + _ROW_H * max(len(ordered), 1)
    height = rows_end + 22
    out = [
        f'<svg id="timeline" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="Certificate expiry timeline" xmlns="http://www.w3.org/2000/svg">'
    ]
    marks = ticks(scale.start, scale.end)
    monthly = len(marks) > 1 and (marks[1] - marks[0]) > timedelta(days=14)
    for tick in marks:
        x = scale.x(tick)
        label = f"{tick:%b %Y}" if monthly else f"{tick:%b %d}"
        out.append(
            f'<g class="tick"><line x1="{x}" x2="{x}" y1="{_TOP - 6}" y2="{rows_end}"/>'
            f'<text x="{x}" y="{_TOP - 12}" text-anchor="middle">{label}</text></g>'
        )
    now_x = scale.x(now)
    for i, row in enumerate(ordered):
        y = _TOP + i * _ROW_H
        mid = y + _ROW_H / 2
        state = health(row, now)
        out.append(f'<g class="svc" data-ident="{escape(row.ident)}">')
        out.append(
            f'<text x="{_LABEL_W - 10}" y="{mid + 4}" text-anchor="end">'
            f"<title>{escape(row.ident)}</title>{escape(_clip(row.ident))}</text>"
        )
        if row.curr_expires is None:
            out.append(f'<text class="none" x="{now_x + 12}" y="{mid + 4}">no certificate</text>')
        else:
            end_x = scale.x(row.curr_expires)
            left, right = min(now_x, end_x), max(now_x, end_x)
            days = f"{row.curr_days_left:.1f}" if row.curr_days_left is not None else "?"
            tip = f"{row.ident}: curr expires {_utc(row.curr_expires)} UTC ({days} days)"
            out.append(
                f'<rect class="bar {state}" x="{left}" y="{mid - _BAR_H / 2}" '
                f'width="{max(right - left, 2):.1f}" height="{_BAR_H}" rx="3">'
                f"<title>{escape(tip)}</title></rect>"
            )
        renew = renewal_time(row)
        if renew is not None:
            x = scale.x(renew)
            what = "due since" if row.renew_due else "renews"
            tip = f"{row.ident}: {what} {_utc(renew)} UTC ({row.renew_reason})"
            points = f"{x},{mid - 8} {x + 6},{mid} {x},{mid + 8} {x - 6},{mid}"
            out.append(
                f'<polygon class="renew" points="{points}"><title>{escape(tip)}</title></polygon>'
            )
        out.append("</g>")
    out.append(
        f'<g class="now"><line x1="{now_x}" x2="{now_x}" y1="{_TOP - 6}" y2="{rows_end + 4}"/>'
        f'<text x="{now_x}" y="{height - 4}" text-anchor="middle">now</text></g>'
    )
    out.append("</svg>")
    return "\n".join(out)


def render_html(rows: Sequence[ServiceStatus], now: datetime, title: str = "sslm-ci") -> str:
    """The whole page. Times are shown in UTC."""
    heading = escape(f"{title} certificate status")
    legend = (
        '<p class="legend"><i style="background:var(--ok)"></i>ok'
        '<i style="background:var(--due)"></i>due for renewal'
        '<i style="background:var(--expired)"></i>expired'
        " &nbsp; bar: now → curr expiry &nbsp; ◆ renewal date &nbsp; dashed line: now</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{heading}</h1>
<p class="summary">at <time datetime="{escape(now.astimezone(UTC).isoformat())}">{_utc(now)} UTC\
</time> · {escape(count_line(list(rows), now))}</p>
</header>
<section>
<h2>Expiry timeline</h2>
{_timeline(rows, now)}
{legend}
</section>
<section>
<h2>Services</h2>
{_table(rows, now)}
</section>
<footer>Generated by sslm-ci from the repository's public files (certificates and info).
Click a column header to sort.</footer>
<script>{_JS}</script>
</body>
</html>
"""


def write_status_page(
    out_dir: Path, rows: Sequence[ServiceStatus], now: datetime, title: str = "sslm-ci"
) -> Path:
    """Write ``out_dir/index.html`` atomically; return its path."""
    path = out_dir / PAGE_NAME
    atomic_write(path, render_html(rows, now, title).encode("utf-8"))
    return path
