"""Inline SVG charts for the fleet report: bars against an expected figure, time series panels."""

from __future__ import annotations

import html
from dataclasses import dataclass

# One fill per chart kind, used nowhere else on the page: the render test finds each chart in
# a screenshot by its colour (tests/report/test_report.py). Below the bar is always LOW.
COLOURS = {
    "throughput": "#2f6fd0",
    "matmul": "#8e44c9",
    "network": "#3f8f3f",
    "temperature_c": "#e07b22",
    "sm_clock_mhz": "#1f9e89",
    "power_w": "#c9a227",
    "cpu_busy_percent": "#5a6b8c",
}
LOW = "#d0452f"
THROTTLED = "#d0452f"  # throttled seconds, shaded


@dataclass
class Bar:
    """One bar: its label, value, and the figure under which it counts as low (if any)."""

    label: str
    value: float
    low_under: float | None = None
    note: str = ""

    @property
    def low(self) -> bool:
        return self.low_under is not None and self.value < self.low_under


def _num(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def bars(kind: str, title: str, unit: str, rows: list[Bar], expected: float | None = None,
         expected_label: str = "expected") -> str:
    """Horizontal bars, one per row; a dashed line at `expected`; low rows in red."""
    e = html.escape
    label_w, plot_w, row_h, top = 300, 460, 22, 26
    top_value = max([r.value for r in rows] + [expected or 0, 1e-9]) * 1.1
    height = top + row_h * len(rows) + 24
    parts = [f'<svg class="chart" data-chart="{e(kind)}" role="img" aria-label="{e(title)}" '
             f'width="{label_w + plot_w + 90}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{e(title)}</title>',
             f'<text x="0" y="15" class="ct">{e(title)} ({e(unit)})</text>']
    for i, row in enumerate(rows):
        y = top + i * row_h
        width = max(1.0, plot_w * row.value / top_value)
        colour = LOW if row.low else COLOURS[kind]
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="cl">'
                     f"{e(row.label[:48])}</text>")
        parts.append(f'<rect class="bar{" low" if row.low else ""}" data-label="{e(row.label)}" '
                     f'x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 6}" '
                     f'fill="{colour}"><title>{e(row.label)}: {_num(row.value)} {e(unit)}'
                     f"{e(row.note)}</title></rect>")
        parts.append(f'<text x="{label_w + width + 4:.1f}" y="{y + 15}" class="cv">'
                     f'{_num(row.value)}{" LOW" if row.low else ""}</text>')
    if expected is not None:
        x = label_w + plot_w * expected / top_value
        parts.append(f'<line class="expected" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" '
                     f'y2="{height - 18}" stroke="#1d2330" stroke-dasharray="4 3"/>'
                     f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle" class="cl">'
                     f"{e(expected_label)} {_num(expected)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def series(kind: str, title: str, unit: str, t: list[float], values: list[float | None],
           ceiling: float | None = None, flagged: list[bool] | None = None) -> str:
    """One time series as a filled area; `ceiling` a dashed line (a maximum), `flagged` seconds
    shaded (throttled)."""
    e = html.escape
    width, height, left, top, bottom = 520, 130, 52, 22, 20
    plot_w, plot_h = width - left - 10, height - top - bottom
    points = [(x, v) for x, v in zip(t, values, strict=False) if v is not None]
    parts = [f'<svg class="chart" data-chart="{e(kind)}" role="img" aria-label="{e(title)}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
             f"<title>{e(title)}</title>",
             f'<text x="0" y="14" class="ct">{e(title)} ({e(unit)})</text>']
    if not points:
        parts.append(f'<text x="{left}" y="{top + 30}" class="cl">no samples</text></svg>')
        return "".join(parts)
    t_max = max(max(x for x, _ in points), 1e-9)
    v_max = max([v for _, v in points] + [ceiling or 0, 1e-9]) * 1.08

    def sx(x: float) -> float:
        return left + plot_w * x / t_max

    def sy(v: float) -> float:
        return top + plot_h * (1 - v / v_max)

    area = [f"{sx(points[0][0]):.1f},{sy(0):.1f}"] + [f"{sx(x):.1f},{sy(v):.1f}"
                                                      for x, v in points]
    area.append(f"{sx(points[-1][0]):.1f},{sy(0):.1f}")
    parts.append(f'<polygon class="series" points="{" ".join(area)}" fill="{COLOURS[kind]}" '
                 f'stroke="{COLOURS[kind]}"/>')
    if flagged:  # over the area, half transparent: the series stays readable beneath
        step = plot_w / max(len(flagged), 1)
        for x, flag in zip(t, flagged, strict=False):
            if flag:
                parts.append(f'<rect class="throttled" x="{sx(x) - step:.1f}" y="{top}" '
                             f'width="{max(step, 1):.1f}" height="{plot_h}" fill="{THROTTLED}" '
                             'fill-opacity="0.55"/>')
    if ceiling is not None:
        parts.append(f'<line class="ceiling" x1="{left}" x2="{left + plot_w}" '
                     f'y1="{sy(ceiling):.1f}" y2="{sy(ceiling):.1f}" stroke="#1d2330" '
                     f'stroke-dasharray="4 3"/><text x="{left + plot_w}" '
                     f'y="{sy(ceiling) - 3:.1f}" text-anchor="end" class="cl">max '
                     f"{_num(ceiling)}</text>")
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#999"/>'
                 f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" '
                 f'y2="{top + plot_h}" stroke="#999"/>'
                 f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="cl">'
                 f"{_num(v_max)}</text>"
                 f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="cl">0</text>'
                 f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end" class="cl">'
                 f"{_num(t_max)} s</text></svg>")
    return "".join(parts)


CHART_STYLE = """
svg.chart{display:block;margin:6px 0 12px;font:12px system-ui,sans-serif}
svg.chart .ct{font-weight:600;font-size:13px} svg.chart .cl{fill:#5b6475}
svg.chart .cv{fill:#1d2330}
.charts{display:flex;gap:18px;flex-wrap:wrap}
"""
