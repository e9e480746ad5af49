"""Charts drawn on the server as inline SVG: no chart library in the browser, nothing fetched from a CDN, and a
screenshot or a printout shows exactly what the marketer saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ["#2563eb", "#94a3b8", "#dc2626", "#f59e0b", "#16a34a", "#7c3aed", "#0891b2", "#db2777", "#65a30d"]


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def uplift_chart(*, treatment_rate: float | None, control_rate: float | None, uplift: float | None,
                 ci_low: float | None, ci_high: float | None, treatment_size: int, control_size: int,
                 title: str = "Conversion after launch") -> str:
    """Treatment vs control conversion as two bars, and the uplift with its 95% interval on a zero line."""
    width, height, top, base = 600, 260, 30, 200
    t, c = treatment_rate or 0.0, control_rate or 0.0
    scale_max = max(t, c, 0.01) * 1.25
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'class="chart" aria-label="Conversion, treatment {_pct(t)} vs control {_pct(c)}">',
             f'<text x="10" y="18" class="chart-title">{escape(title)}</text>',
             f'<line x1="40" y1="{base}" x2="300" y2="{base}" stroke="#cbd5e1"/>']
    for i, (label, rate, size, color) in enumerate((("Treatment", t, treatment_size, PALETTE[0]),
                                                     ("Control", c, control_size, PALETTE[1]))):
        bar_h = (base - top) * rate / scale_max
        x = 70 + i * 120
        parts.append(f'<rect x="{x}" y="{base - bar_h:.1f}" width="80" height="{bar_h:.1f}" rx="3" fill="{color}">'
                     f'<title>{label}: {_pct(rate)} of {size}</title></rect>')
        parts.append(f'<text x="{x + 40}" y="{base - bar_h - 6:.1f}" text-anchor="middle" class="chart-value">'
                     f'{_pct(rate)}</text>')
        parts.append(f'<text x="{x + 40}" y="{base + 18}" text-anchor="middle" class="chart-label">{label}</text>')
        parts.append(f'<text x="{x + 40}" y="{base + 34}" text-anchor="middle" class="chart-note">n = {size:,}</text>')
    # The uplift panel: a horizontal interval around a zero line. An interval clear of zero is a real effect.
    left, right, mid_y = 350, 580, 120
    parts.append(f'<text x="{left}" y="18" class="chart-title">Uplift, 95% interval</text>')
    if uplift is None or ci_low is None or ci_high is None:
        parts.append(f'<text x="{left}" y="{mid_y}" class="chart-note">not measurable yet '
                     f'(a group is empty)</text>')
    else:
        span = max(abs(ci_low), abs(ci_high), abs(uplift), 0.01) * 1.2

        def x_of(v: float) -> float:
            return left + (right - left) * (v + span) / (2 * span)

        significant = ci_low > 0 or ci_high < 0
        color = PALETTE[4] if ci_low > 0 else PALETTE[2] if ci_high < 0 else PALETTE[3]
        parts += [
            f'<line x1="{x_of(0):.1f}" y1="50" x2="{x_of(0):.1f}" y2="190" stroke="#64748b" stroke-dasharray="4 3"/>',
            f'<text x="{x_of(0):.1f}" y="205" text-anchor="middle" class="chart-note">0</text>',
            f'<line x1="{x_of(ci_low):.1f}" y1="{mid_y}" x2="{x_of(ci_high):.1f}" y2="{mid_y}" stroke="{color}" '
            f'stroke-width="4"/>',
            f'<line x1="{x_of(ci_low):.1f}" y1="{mid_y - 10}" x2="{x_of(ci_low):.1f}" y2="{mid_y + 10}" '
            f'stroke="{color}" stroke-width="2"/>',
            f'<line x1="{x_of(ci_high):.1f}" y1="{mid_y - 10}" x2="{x_of(ci_high):.1f}" y2="{mid_y + 10}" '
            f'stroke="{color}" stroke-width="2"/>',
            f'<circle cx="{x_of(uplift):.1f}" cy="{mid_y}" r="7" fill="{color}"><title>uplift {_pct(uplift)}'
            f'</title></circle>',
            f'<text x="{x_of(uplift):.1f}" y="{mid_y - 16}" text-anchor="middle" class="chart-value">'
            f'{"+" if uplift >= 0 else ""}{_pct(uplift)}</text>',
            f'<text x="{x_of(ci_low):.1f}" y="{mid_y + 28}" text-anchor="middle" class="chart-note">{_pct(ci_low)}'
            f'</text>',
            f'<text x="{x_of(ci_high):.1f}" y="{mid_y + 28}" text-anchor="middle" class="chart-note">{_pct(ci_high)}'
            f'</text>',
            f'<text x="{(left + right) / 2:.0f}" y="235" text-anchor="middle" class="chart-label">'
            f'{"significant at 95%" if significant else "not significant: the interval includes 0"}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(*, days: Sequence[str], series: Mapping[str, Sequence[int]], title: str) -> str:
    """Counts per day stacked by category (e.g. the gate's suppressions by reason), with a legend."""
    width, height, left, top, base = 720, 300, 40, 30, 230
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    peak = max(totals or [0]) or 1
    slot = (width - left - 20) / max(len(days), 1)
    bar_w = max(4.0, slot * 0.7)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="chart" '
             f'aria-label="{escape(title)}">',
             f'<text x="10" y="18" class="chart-title">{escape(title)}</text>',
             f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#cbd5e1"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="chart-note">{peak}</text>',
             f'<text x="{left - 6}" y="{base}" text-anchor="end" class="chart-note">0</text>']
    if not days:
        parts.append(f'<text x="{left + 10}" y="{base - 90}" class="chart-note">nothing suppressed in this period'
                     f'</text>')
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(base)
        for color, (name, values) in zip(PALETTE * 3, series.items(), strict=False):
            h = (base - top) * values[i] / peak
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                         f'<title>{escape(day)} {escape(name)}: {values[i]}</title></rect>')
        if len(days) <= 16 or i % max(1, len(days) // 8) == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{base + 16}" text-anchor="middle" class="chart-note">'
                         f'{escape(day[5:])}</text>')
    lx, ly = float(left), base + 36
    for color, name in zip(PALETTE * 3, series, strict=False):
        width_needed = 30 + 6.6 * len(name)  # legend entries flow left to right, wrapping at the edge
        if lx + width_needed > width - 10 and lx > left:
            lx, ly = float(left), ly + 18
        parts.append(f'<rect x="{lx:.0f}" y="{ly - 10}" width="12" height="12" fill="{color}"/>'
                     f'<text x="{lx + 18:.0f}" y="{ly}" class="chart-label">{escape(name)}</text>')
        lx += width_needed
    parts.append("</svg>")
    return "".join(parts)
