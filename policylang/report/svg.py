"""Charts as inline SVG: no script, no fonts, no external resource.

Each function returns the markup of one ``<svg>`` element, ready to be placed in
an HTML page (inline SVG needs no ``xmlns`` there). All text is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from policylang.report.escaping import escape_text
from policylang.report.model import Histogram

__all__ = ["OUTCOME_COLORS", "Bar", "histogram_svg", "outcome_bar_svg", "rate_bars_svg"]

OUTCOME_COLORS: Final = {
    "end": "#c0392b",
    "escalate": "#d68910",
    "warn": "#b7950b",
    "continue": "#5d8aa8",
}
BAR_COLOR: Final = "#3b6ea8"
AXIS_COLOR: Final = "#444"
GRID_COLOR: Final = "#ddd"
TEXT_COLOR: Final = "#222"
FONT: Final = 'font-family="system-ui, sans-serif"'
MAX_SLOTS: Final = 40
"""A histogram with a wider range than this groups values into bins."""


def _text(value: object) -> str:
    return str(escape_text(value))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tick(value: float) -> str:
    return f"{round(value, 6):g}"


def nice_step(maximum: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving at most ``ticks`` ticks."""
    if maximum <= 0:
        return 1.0
    raw = maximum / ticks
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * power:
            return float(multiple * power)
    return float(10 * power)


def _bins(histogram: Histogram, start: int) -> list[tuple[str, int]]:
    """``(label, count)`` slots from ``start`` to the largest value, grouped if too many."""
    counts = dict(histogram.counts)
    last = max(counts) if counts else start
    first = min(start, min(counts)) if counts else start
    span = last - first + 1
    width = max(1, math.ceil(span / MAX_SLOTS))
    slots: list[tuple[str, int]] = []
    low = first
    while low <= last:
        high = min(last, low + width - 1)
        total = sum(counts.get(value, 0) for value in range(low, high + 1))
        slots.append((str(low) if low == high else f"{low}-{high}", total))
        low = high + 1
    return slots


def histogram_svg(
    histogram: Histogram, *, start: int, title: str, x_label: str, y_label: str = "conversations"
) -> str:
    """A vertical bar chart of ``histogram``, one bar per value from ``start`` on."""
    slots = _bins(histogram, start)
    width, height = 560, 260
    left, right, top, bottom = 56, 16, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((count for _, count in slots), default=0)
    step = nice_step(peak, 5)
    y_max = max(step, math.ceil(peak / step) * step)
    slot_w = plot_w / max(1, len(slots))
    bar_w = max(1.0, slot_w * 0.75)
    label_every = max(1, math.ceil(len(slots) / 20))

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_text(title)}" {FONT} font-size="12">',
        f"<title>{_text(title)}</title>",
    ]
    # Grid and y ticks.
    for number in range(round(y_max / step) + 1):
        tick = number * step
        y = top + plot_h - plot_h * tick / y_max
        parts.append(
            f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" '
            f'stroke="{GRID_COLOR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" '
            f'fill="{TEXT_COLOR}">{_tick(tick)}</text>'
        )
    # Bars, value labels and x tick labels.
    for number, (label, count) in enumerate(slots):
        center = left + slot_w * (number + 0.5)
        bar_h = plot_h * count / y_max
        y = top + plot_h - bar_h
        if count:
            parts.append(
                f'<rect x="{_num(center - bar_w / 2)}" y="{_num(y)}" width="{_num(bar_w)}" '
                f'height="{_num(bar_h)}" fill="{BAR_COLOR}"><title>{_text(label)}: '
                f"{count}</title></rect>"
            )
            parts.append(
                f'<text x="{_num(center)}" y="{_num(y - 4)}" text-anchor="middle" '
                f'font-size="11" fill="{TEXT_COLOR}">{count}</text>'
            )
        if number % label_every == 0:
            parts.append(
                f'<text x="{_num(center)}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'fill="{TEXT_COLOR}">{_text(label)}</text>'
            )
    # Axes and their titles.
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{AXIS_COLOR}"/>'
    )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{AXIS_COLOR}"/>'
    )
    parts.append(
        f'<text x="{_num(left + plot_w / 2)}" y="{height - 12}" text-anchor="middle" '
        f'fill="{TEXT_COLOR}">{_text(x_label)}</text>'
    )
    mid = top + plot_h / 2
    parts.append(
        f'<text x="14" y="{_num(mid)}" text-anchor="middle" fill="{TEXT_COLOR}" '
        f'transform="rotate(-90 14 {_num(mid)})">{_text(y_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def outcome_bar_svg(counts: Sequence[tuple[str, int]], *, title: str) -> str:
    """One horizontal bar split by outcome, in proportion to the counts."""
    width, height = 560, 28
    total = sum(count for _, count in counts)
    parts = [
        f'<svg class="outcomes" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{_text(title)}" {FONT} font-size="12">',
        f"<title>{_text(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eee"/>',
    ]
    x = 0.0
    for outcome, count in counts:
        if not count or not total:
            continue
        # A sliver stays visible however rare the outcome is.
        share = max(2.0, width * count / total)
        share = min(share, width - x)
        parts.append(
            f'<rect x="{_num(x)}" y="0" width="{_num(share)}" height="{height}" '
            f'fill="{OUTCOME_COLORS.get(outcome, BAR_COLOR)}"><title>{_text(outcome)}: '
            f"{count} of {total}</title></rect>"
        )
        x += share
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of :func:`rate_bars_svg`."""

    label: str
    rate: float
    budget: float | None = None


def _percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def rate_bars_svg(bars: Sequence[Bar], *, title: str, x_label: str) -> str:
    """Horizontal bars of rates (0..1), one per row, with budget marks where given."""
    row_h = 24
    left, right, top, bottom = 190, 70, 8, 44
    width = 720
    plot_w = width - left - right
    height = top + bottom + row_h * max(1, len(bars))
    peak = max([bar.rate for bar in bars] + [bar.budget or 0.0 for bar in bars] + [0.0])
    step = nice_step(peak * 100, 5) / 100 if peak > 0 else 0.002
    x_max = max(step, math.ceil(peak / step - 1e-9) * step)
    plot_h = row_h * max(1, len(bars))

    def x_of(value: float) -> float:
        return left + plot_w * min(value, x_max) / x_max

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_text(title)}" {FONT} font-size="12">',
        f"<title>{_text(title)}</title>",
    ]
    for number in range(round(x_max / step) + 1):
        tick = number * step
        x = x_of(tick)
        parts.append(
            f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{top + plot_h}" '
            f'stroke="{GRID_COLOR}"/>'
        )
        parts.append(
            f'<text x="{_num(x)}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'fill="{TEXT_COLOR}">{_tick(tick * 100)}%</text>'
        )
    for number, bar in enumerate(bars):
        y = top + row_h * number
        center = y + row_h / 2
        label = bar.label if len(bar.label) <= 28 else bar.label[:27] + "\u2026"
        parts.append(
            f'<text x="{left - 8}" y="{_num(center + 4)}" text-anchor="end" '
            f'fill="{TEXT_COLOR}">{_text(label)}</text>'
        )
        bar_w = x_of(bar.rate) - left
        over = bar.budget is not None and bar.rate > bar.budget
        color = OUTCOME_COLORS["end"] if over or bar.budget is None else BAR_COLOR
        if bar.rate > 0:
            parts.append(
                f'<rect x="{left}" y="{_num(y + 5)}" width="{_num(max(bar_w, 2.0))}" '
                f'height="{row_h - 10}" fill="{color}"><title>{_text(bar.label)}: '
                f"{_percent(bar.rate)}</title></rect>"
            )
        parts.append(
            f'<text x="{_num(left + max(bar_w, 2.0) + 6)}" y="{_num(center + 4)}" '
            f'fill="{TEXT_COLOR}">{_percent(bar.rate)}</text>'
        )
        if bar.budget is not None:
            bx = x_of(bar.budget)
            parts.append(
                f'<line x1="{_num(bx)}" y1="{y + 2}" x2="{_num(bx)}" y2="{y + row_h - 2}" '
                f'stroke="{TEXT_COLOR}" stroke-width="2" stroke-dasharray="3 2">'
                f"<title>budget {_percent(bar.budget)}</title></line>"
            )
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{AXIS_COLOR}"/>'
    )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{AXIS_COLOR}"/>'
    )
    parts.append(
        f'<text x="{_num(left + plot_w / 2)}" y="{height - 8}" text-anchor="middle" '
        f'fill="{TEXT_COLOR}">{_text(x_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
