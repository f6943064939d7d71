"""Charts drawn on the server as inline SVG: no chart library, no script, works under the
admin's CSP (colours come from classes in admin.css, never from style attributes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup

from acquisition.web.admin.i18n import Formats

WIDTH = 480
HEIGHT = 210
LEFT, RIGHT, TOP, BOTTOM = 40, 6, 26, 24
MAX_X_LABELS = 6


def nice_ticks(top: int, count: int = 4) -> list[int]:
    """Round tick values from 0 to at least `top`: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(s * power for s in (1, 2, 5, 10) if s * power >= raw)
    step = max(1, int(step))
    last = math.ceil(top / step) * step
    return list(range(0, last + 1, step))


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def bars(
    points: Sequence[tuple[date, int]],
    *,
    ident: str,
    title: str,
    unit: str,
    series_class: str,
    fmt: Formats,
    describe: str,
) -> Markup:
    """A bar per day with a labelled y axis (in `unit`), day labels, and a tooltip per bar.

    `describe` is the text summary screen readers get (the totals and the peak)."""
    values = [value for _, value in points]
    ticks = nice_ticks(max(values, default=0))
    top = ticks[-1]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(points))
    gap = min(slot * 0.25, 6.0)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(describe)}</desc>',
    ]
    for tick in ticks:
        y = TOP + plot_h - (tick / top) * plot_h
        out.append(
            f'<line class="grid{" axis" if tick == 0 else ""}" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{_n(y)}" y2="{_n(y)}"/>'
        )
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end">'
            f"{escape(fmt.num(tick))}</text>"
        )
    out.append(f'<text class="unit" x="0" y="11">{escape(unit)}</text>')
    every = max(1, math.ceil(len(points) / MAX_X_LABELS))
    for i, (day, value) in enumerate(points):
        x = LEFT + i * slot + gap / 2
        h = (value / top) * plot_h if top else 0
        label = f"{fmt.day(day)}: {fmt.num(value)} {unit}"
        if value:
            out.append(
                f'<rect class="bar {series_class}" x="{_n(x)}" y="{_n(TOP + plot_h - h)}" '
                f'width="{_n(max(1.0, slot - gap))}" height="{_n(max(h, 1.0))}" rx="2">'
                f"<title>{escape(label)}</title></rect>"
            )
        # An invisible full-height target: a tooltip even on a zero day.
        out.append(
            f'<rect class="hit" x="{_n(LEFT + i * slot)}" y="{TOP}" width="{_n(slot)}" '
            f'height="{_n(plot_h)}"><title>{escape(label)}</title></rect>'
        )
        if i % every == 0:
            cx = LEFT + i * slot + slot / 2
            out.append(
                f'<text class="tick" x="{_n(cx)}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(fmt.day(day))}</text>"
            )
    out.append("</svg>")
    return Markup("".join(out))
