"""Bar charts as plain geometry for server-rendered SVG (no JavaScript, no inline styles: CSP-clean)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    grid: list[tuple[float, str]]
    """(y, label) of the horizontal grid lines of a column chart."""
    left: float
    label_every: int
    empty: bool


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= top:
            return step * power
    return 10 * power


def columns(
    points: list[tuple[str, float, str, str]], *, fmt: str = "number", width: int = 640, height: int = 200
) -> Chart:
    """Vertical bars over time: ``(axis label, value, shown value, tooltip)`` per point."""
    bottom, top_pad = 22, 8
    top = _nice(max((v for _, v, _, _ in points), default=0.0))
    ticks = [(f, _axis(top * f, fmt)) for f in (0.0, 0.5, 1.0)]
    left = 14 + 6.8 * max(len(t) for _, t in ticks)  # room for the longest axis label (11px text)
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    slot = plot_w / max(len(points), 1)
    gap = min(6.0, slot * 0.25)
    bars = []
    for i, (label, value, shown, title) in enumerate(points):
        h = 0.0 if top == 0 else plot_h * value / top
        if value > 0:
            h = max(h, 1.5)
        bars.append(Bar(left + i * slot + gap / 2, top_pad + plot_h - h, max(slot - gap, 1.0), h, label, shown, title))
    grid = [(top_pad + plot_h * (1 - f), text) for f, text in ticks]
    every = max(1, round(len(points) / 8))
    return Chart(width, height, bars, grid, left, every, empty=all(v == 0 for _, v, _, _ in points))


def rows(items: list[tuple[str, float, str]], *, width: int = 480, row_h: int = 28, limit: int = 8) -> Chart:
    """Horizontal bars, largest first: ``(label, value, shown value)`` per row."""
    items = sorted(items, key=lambda i: -i[1])[:limit]
    label_w, value_w = 160, 84
    plot_w = width - label_w - value_w
    top = max((v for _, v, _ in items), default=0.0) or 1.0
    bars = [
        Bar(label_w, i * row_h + 4, max(plot_w * value / top, 1.5 if value > 0 else 0), row_h - 8, label, shown, label)
        for i, (label, value, shown) in enumerate(items)
    ]
    return Chart(
        width, max(len(items), 1) * row_h, bars, [], label_w, 1, empty=not items or all(v == 0 for _, v, _ in items)
    )


def _axis(value: float, fmt: str) -> str:
    if fmt == "money":
        if value == 0 or value >= 100:
            return f"${value:,.0f}"
        return f"${value:,.2f}" if value >= 1 else "$" + f"{value:.6f}".rstrip("0")
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"
