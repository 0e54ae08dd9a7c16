"""Small charts as inline SVG, drawn on the server: no chart library to vendor, nothing run in
the browser, and a chart reads the same in a screenshot, a test and a text browser (its title
and legend carry the numbers)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from html import escape
from typing import Sequence

from markupsafe import Markup

WIDTH, HEIGHT = 420, 130
#: room for the y labels (left) and the time labels (bottom)
LEFT, BOTTOM, TOP, RIGHT = 44, 18, 8, 6


@dataclass(frozen=True)
class Series:
    name: str
    #: one value per time; None: nothing to show there (a gap in a line, no bar)
    values: Sequence[float | None]
    colour: str
    bars: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (an axis top a person reads at once)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value * (1 - 1e-9))


def chart(title: str, times: Sequence[float], series: Sequence[Series], unit: str = "", top: float | None = None) -> Markup:
    """An SVG chart of ``series`` over ``times`` (Unix seconds, oldest first); ``top``: a fixed
    axis top (100 for a percentage) instead of the data's."""
    latest = "; ".join(f"{s.name} {_number(_last(s.values))}{unit}" for s in series)
    label = f"{title}. Latest: {latest}" if times else f"{title}: no readings yet"
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="{escape(label)}"><title>{escape(label)}</title>']
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = top or nice_ceiling(max((v for s in series for v in s.values if v is not None), default=0.0))
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6eb"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#6b7385">'
                     f'{_number(top * fraction)}{escape(unit)}</text>')
    if not times:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" font-size="11" '
                     f'fill="#6b7385">no readings yet</text></svg>')
        return Markup("".join(parts))
    n = len(times)
    slot = plot_w / n

    def x(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    for s in series:
        if s.bars:
            for i, v in enumerate(s.values):
                if v:
                    parts.append(f'<rect x="{x(i) - slot * 0.4:.1f}" y="{y(v):.1f}" width="{max(slot * 0.8, 0.5):.1f}" '
                                 f'height="{TOP + plot_h - y(v):.1f}" fill="{s.colour}"/>')
            continue
        for run in _runs(s.values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) == 1:
                parts.append(f'<circle cx="{x(run[0][0]):.1f}" cy="{y(run[0][1]):.1f}" r="2" fill="{s.colour}"/>')
            else:
                parts.append(f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="1.6"/>')
    for anchor, at, place in (("start", times[0], LEFT), ("end", times[-1], WIDTH - RIGHT)):
        parts.append(f'<text x="{place}" y="{HEIGHT - 4}" text-anchor="{anchor}" font-size="10" fill="#6b7385">'
                     f'{time.strftime("%H:%M:%S", time.gmtime(at))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(series: Sequence[Series], unit: str = "") -> Markup:
    """Each series' colour, name and latest value, under its chart (the swatch is SVG with a
    ``fill`` attribute, not a ``style``: the pages' CSP allows no inline style)."""
    return Markup(" ".join(
        f'<span class="legend"><svg width="11" height="11" aria-hidden="true"><rect width="11" height="11" rx="2" '
        f'fill="{escape(s.colour)}"/></svg>{escape(s.name)} '
        f'<strong>{_number(_last(s.values))}{escape(unit)}</strong></span>' for s in series))


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """The stretches of a line between gaps."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, v))
    return [run for run in runs if run]


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
