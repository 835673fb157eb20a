"""Charts drawn on the server: one layout, two renderings (SVG for the console, PNG for
the Telegram digest through core.png).

A chart is laid out once into plain shapes (rectangles, lines, texts) in pixel
coordinates; `to_svg` writes them as SVG (every text escaped), `core.png.render` paints
the same shapes into a PNG. No chart library, nothing loaded from a CDN, so the console
works offline and the digest's picture is exactly the console's 7-day chart.

Colours are the desk's status colours, also used by the console's badges; each has a
Telegram square emoji of the same hue for the digest caption's legend.
"""

from __future__ import annotations

import html
import zlib
from dataclasses import dataclass, field

STATUS_COLORS = {
    "open": "#2563eb",
    "in_progress": "#d97706",
    "completed": "#16a34a",
    "closed": "#7c3aed",
}
STATUS_EMOJI = {"open": "🟦", "in_progress": "🟧", "completed": "🟩", "closed": "🟪"}
AXIS = "#6b7280"
GRID = "#e5e7eb"
INK = "#111827"
BAR = "#2563eb"
BAR_ALT = "#16a34a"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    color: str
    title: str = ""  # tooltip in SVG


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    color: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # baseline
    text: str
    anchor: str = "start"  # start | middle | end
    size: int = 12
    color: str = INK


@dataclass
class Chart:
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (label, colour)


def nice_max(value: float) -> tuple[float, float]:
    """An axis top at or above `value` and its tick step (1, 2 or 5 times a power of ten),
    for about four gridlines."""
    if value <= 0:
        return 4.0, 1.0
    raw = value / 4
    power = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1.0
    for mult in (1, 2, 5, 10):
        step = mult * power
        if step >= raw:
            break
    if step < 1:
        step = 1.0
    top = step * -(-value // step)
    return float(top), float(step)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def stacked_columns(
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    *,
    width: int = 720,
    height: int = 260,
    label_every: int = 1,
    totals: bool = True,
) -> Chart:
    """Vertical stacked bars, one column per label; `series` is (name, colour, values)
    stacked bottom up in the given order. Gridlines with counts on the left, labels under
    the columns (every `label_every`-th), each column's total above it."""
    left, right, top, bottom = 36, 8, 18, 24
    chart = Chart(width, height, legend=[(name, color) for name, color, _ in series])
    n = max(1, len(labels))
    column_totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    axis_top, step = nice_max(max(column_totals, default=0))
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    tick = 0.0
    while tick <= axis_top + 1e-9:
        y = base - plot_h * tick / axis_top
        chart.lines.append(Line(left, y, width - right, y, GRID if tick else AXIS))
        chart.texts.append(Text(left - 6, y + 4, _fmt(tick), "end", 11, AXIS))
        tick += step
    slot = plot_w / n
    bar_w = max(2.0, slot * 0.7)
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y = base
        for name, color, values in series:
            value = values[i]
            if value <= 0:
                continue
            h = plot_h * value / axis_top
            y -= h
            chart.rects.append(Rect(x, y, bar_w, h, color, f"{label}: {name} {value}"))
        if totals and column_totals[i]:
            chart.texts.append(Text(x + bar_w / 2, y - 4, str(column_totals[i]), "middle", 10, INK))
        if i % label_every == 0 or i == n - 1:
            chart.texts.append(Text(x + bar_w / 2, height - 8, label, "middle", 10, AXIS))
    return chart


def horizontal_bars(
    rows: list[tuple[str, float, str]],
    *,
    color: str = BAR,
    width: int = 400,
    row_height: int = 30,
    label_width: int = 150,
) -> Chart:
    """One horizontal bar per row: (label, value, value text). Labels on the left (cut to
    fit), the value text after the bar. Sized for a third of a desktop page or a phone."""
    top, right = 6, 70
    rows = [(_cut(label, label_width), value, text) for label, value, text in rows]
    height = top * 2 + row_height * max(1, len(rows))
    chart = Chart(width, height)
    biggest = max((v for _, v, _ in rows), default=0) or 1
    plot_w = width - label_width - right
    for i, (label, value, text) in enumerate(rows):
        y = top + row_height * i
        chart.texts.append(Text(label_width - 8, y + row_height / 2 + 5, label, "end", 13, INK))
        w = plot_w * value / biggest if value > 0 else 0
        if w:
            chart.rects.append(Rect(label_width, y + 4, max(w, 2), row_height - 8, color, f"{label}: {text}"))
        chart.texts.append(Text(label_width + w + 6, y + row_height / 2 + 5, text, "start", 13, INK))
    chart.lines.append(Line(label_width, top, label_width, height - top, AXIS))
    return chart


def _cut(label: str, width: int) -> str:
    # About 7 px per character at 13 px: keep a label inside its column.
    room = max(4, (width - 12) // 7)
    return label if len(label) <= room else label[: room - 1] + "…"


def to_svg(chart: Chart, *, title: str, desc: str = "") -> str:
    """The chart as an inline SVG element (role img, <title>/<desc> for screen readers),
    every text escaped; scales to its container's width."""
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width} {chart.height}" '
        f'width="100%" role="img" aria-labelledby="{_id(title)}-t" class="chart">',
        f'<title id="{_id(title)}-t">{e(title)}</title>',
    ]
    if desc:
        parts.append(f"<desc>{e(desc)}</desc>")
    for ln in chart.lines:
        parts.append(
            f'<line x1="{ln.x1:.1f}" y1="{ln.y1:.1f}" x2="{ln.x2:.1f}" y2="{ln.y2:.1f}" '
            f'stroke="{ln.color}" stroke-width="1"/>'
        )
    for r in chart.rects:
        tip = f"<title>{e(r.title)}</title>" if r.title else ""
        parts.append(
            f'<rect x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" height="{r.h:.1f}" '
            f'fill="{r.color}">{tip}</rect>'
        )
    for t in chart.texts:
        parts.append(
            f'<text x="{t.x:.1f}" y="{t.y:.1f}" text-anchor="{t.anchor}" font-size="{t.size}" '
            f'fill="{t.color}">{e(t.text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _id(title: str) -> str:
    return f"c{zlib.crc32(title.encode()):08x}"


def per_day_chart(days: list, lang: str, *, width: int = 720, height: int = 260) -> Chart:
    """Requests created per day, stacked by their status now (core.reports.requests_per_day):
    the console's 30-day chart and the digest's 7-day one."""
    from core.texts import STATUS_LABELS, lang_of

    names = STATUS_LABELS[lang_of(lang)]
    labels = [d.day.strftime("%d.%m") for d in days]
    series = [
        (names[status], color, [d.counts.get(status, 0) for d in days])
        for status, color in STATUS_COLORS.items()
    ]
    every = 1 if len(days) <= 10 else 3
    return stacked_columns(labels, series, width=width, height=height, label_every=every)


def legend_text(lang: str, days: list) -> str:
    """The legend as text with square emoji of the same hues, and each status's total over
    the days ("🟦 Открыт 3 · 🟧 В работе 5 ..."): the digest photo's caption."""
    from core.texts import STATUS_LABELS, lang_of

    names = STATUS_LABELS[lang_of(lang)]
    return " · ".join(
        f"{STATUS_EMOJI[s]} {names[s]} {sum(d.counts.get(s, 0) for d in days)}"
        for s in STATUS_COLORS
    )
