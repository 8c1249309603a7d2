"""Bar charts as inline SVG: drawn on the server, nothing fetched by the browser.

One bar group per run, oldest on the left. Every bar carries its run id and
value as data attributes and a tooltip, so a reader (or a test) can tell which
run it stands for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from ticketflow.web.health import RunPoint

FAILED_COLOR = "#d64541"
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 10, 22


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str
    value: Callable[[RunPoint], float | None]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value` (the axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.3g}"


def bar_chart(runs: Sequence[RunPoint], series: Sequence[Series], *, name: str, unit: str = "",
              width: int = 400, height: int = 120, widest_bar: float = 14) -> str:
    """An SVG bar chart of `series` over `runs`; failed runs' bars are drawn in red."""
    values = [[s.value(run) for s in series] for run in runs]
    top = nice_ceiling(max((v for group in values for v in group if v is not None), default=0))
    plot_width, plot_height = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    slot = plot_width / max(len(runs), 1)
    bar = min(max(slot * 0.8 / len(series), 1.0), widest_bar)
    margin = (slot - bar * len(series)) / 2  # each run's bars centred in its slot
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(name)}" role="img"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(name)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = _TOP + plot_height * (1 - fraction)
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_number(top * fraction)}{escape(unit)}</text>")
    for index, (run, group) in enumerate(zip(runs, values, strict=True)):
        for offset, (s, value) in enumerate(zip(series, group, strict=True)):
            if value is None:
                continue
            bar_height = plot_height * value / top
            x = _LEFT + index * slot + margin + offset * bar
            color = FAILED_COLOR if run.status == "error" else s.color
            tooltip = (f"{run.started_at:%Y-%m-%d %H:%M} UTC, {run.run_id}: {s.label} {_number(value)}{unit}"
                       f" ({run.status})")
            parts.append(
                f'<rect class="bar" data-run-id="{escape(run.run_id)}" data-series="{escape(s.key)}"'
                f' data-value="{value:g}" data-status="{escape(run.status)}" x="{x:.2f}"'
                f' y="{_TOP + plot_height - bar_height:.2f}" width="{bar:.2f}" height="{max(bar_height, 0.5):.2f}"'
                f' fill="{color}"><title>{escape(tooltip)}</title></rect>')
    if runs:
        baseline = height - 6
        parts.append(f'<text class="axis" x="{_LEFT}" y="{baseline}">{runs[0].started_at:%a %H:%M}</text>')
        parts.append(f'<text class="axis" x="{width - _RIGHT}" y="{baseline}" text-anchor="end">'
                     f"{runs[-1].started_at:%a %H:%M}</text>")
    parts.append("</svg>")
    return "".join(parts)
