"""Server-side SVG charts: shapes computed here, drawn by the dashboard template.

No chart library and no script: the page stays within a strict Content Security Policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.history import Stats

STATUS_COLOURS = {
    "completed": "#2f9e44",
    "failed": "#e03131",
    "rejected": "#868e96",
    "executing": "#1c7ed6",
    "approved": "#74c0fc",
    "pending": "#f59f00",
}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    rects: list[Rect]
    labels: list[Label]
    title: str


def per_day_chart(stats: Stats, width: int = 720, height: int = 240) -> Chart:
    """Stacked bars: requests created each day, by status."""
    left, bottom, top = 36, 28, 10
    days = stats.days
    totals = [sum(stats.per_day[s][i] for s in STATUS_COLOURS) for i in range(len(days))]
    peak = max(totals, default=0) or 1
    slot = (width - left - 4) / max(len(days), 1)
    scale = (height - bottom - top) / peak
    rects, labels = [], []
    for i, day in enumerate(days):
        y = height - bottom
        for status, colour in reversed(STATUS_COLOURS.items()):
            count = stats.per_day[status][i]
            if not count:
                continue
            h = count * scale
            y -= h
            rects.append(
                Rect(
                    left + i * slot + 1, y, max(slot - 2, 1), h, colour, f"{day}: {count} {status}"
                )
            )
        if i % max(1, len(days) // 6) == 0:
            labels.append(Label(left + i * slot + slot / 2, height - 10, f"{day:%b %d}"))
    for tick in sorted({0, peak // 2, peak}):
        y = height - bottom - tick * scale + 4
        labels.append(Label(left - 6, y, str(tick), "end"))
    return Chart(width, height, rects, labels, "Requests per day by status")


def bar_list_chart(
    title: str, items: list[tuple[str, float]], unit: str = "", width: int = 260
) -> Chart:
    """Horizontal bars with their names above them (busiest instances, people, times)."""
    row = 38
    height = max(row * len(items), row)
    peak = max((value for _, value in items), default=0) or 1
    rects, labels = [], []
    for i, (name, value) in enumerate(items):
        y = i * row
        w = max((width - 60) * value / peak, 2)
        rects.append(Rect(0, y + 16, w, 16, "#4263eb", f"{name}: {value:g}{unit}"))
        labels.append(Label(0, y + 12, name, "start"))
        labels.append(Label(w + 6, y + 29, f"{value:g}{unit}", "start"))
    return Chart(width, height, rects, labels, title)
