"""Charts as inline SVG text: titled, with labelled axes and units, readable at laptop width, no library.

The portfolio site draws a chart on every one of its pages (10,000 account pages in well under a minute), so
charts are strings built here, not matplotlib figures. Every text from data is escaped; numbers are written
with fixed decimals, so the same inputs give the same bytes. Each chart is ``role="img"`` with a ``<title>``
and a ``<desc>`` (its alt text) and scales to its container's width through its ``viewBox``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

#: series colours: colour-blind safe and distinct in grey scale; band colours match the reports' CSS
PALETTE = ("#1f6feb", "#bf8700", "#8250df", "#1a7f37", "#cf222e", "#57606a")
BAND_COLOURS = {"healthy": "#2e7d32", "watch": "#b7791f", "at_risk": "#c62828"}

_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif"'


def _f(x: float) -> str:
    """A coordinate with one decimal (fixed bytes for the same value)."""
    return f"{x:.1f}"


def _open(chart_id: str, width: int, height: int, title: str, desc: str) -> list[str]:
    t, d = escape(title), escape(desc)
    return [
        f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" {_FONT} font-size="12">',
        f'<title id="{escape(chart_id)}-t">{t}</title><desc id="{escape(chart_id)}-d">{d}</desc>',
        f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" font-size="14" font-weight="600">{t}</text>',
    ]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (steps of 1, 2 or 5 × 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, v = [], first
    while v <= high + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def money(x: float) -> str:
    """12,345 → "12.3k", 2,500,000 → "2.5M" (axis labels; tables show full numbers)."""
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.1f}M".replace(".0M", "M")
    if a >= 1e3:
        return f"{x / 1e3:.1f}k".replace(".0k", "k")
    return f"{x:.0f}" if a >= 1 or x == 0 else f"{x:.2g}"  # axis ticks below 1 only when nothing is bigger


@dataclass(frozen=True)
class Point:
    """One point of a score trend: its date, score, colour key, and an optional marker note (an alert)."""

    day: date
    score: float
    band: str = ""
    note: str = ""


def _date_axis(days: Sequence[date], x0: float, x1: float):
    """x position of each date (proportional to time) and the dates to label (at most 7)."""
    ordinals = [d.toordinal() for d in days]
    lo, hi = min(ordinals), max(ordinals)
    span = max(1, hi - lo)
    pad = 0.0 if hi > lo else 0.5

    def x(d: date) -> float:
        if hi == lo:
            return (x0 + x1) / 2
        return x0 + (d.toordinal() - lo) / span * (x1 - x0) * (1 - pad)

    if len(days) <= 7:
        labelled = list(days)
    else:
        step = (len(days) - 1) / 6
        labelled = [days[round(i * step)] for i in range(7)]
    return x, labelled


def trend_chart(points: Sequence[Point], *, chart_id: str, title: str, desc: str,
                y_label: str = "score (0–100)", cuts: tuple[float, ...] = (), colours: dict[str, str] | None = None,
                width: int = 640, height: int = 240, marker_label: str = "alert") -> Markup:
    """A score over time: a line through the points on a 0–100 axis, dashed cut lines, ringed marked points.

    ``colours`` maps a point's ``band`` to its dot colour (default: one neutral colour, for the customer's
    report, which never names internal bands). A point with a ``note`` gets a red ring and the note as its
    tooltip; a legend names the ring ``marker_label``.
    """
    colours = colours or {}
    left, right, top, bottom = 52, 16, 30, 46
    x0, x1, y0, y1 = left, width - right, height - bottom, top

    def y(v: float) -> float:
        return y0 - max(0.0, min(100.0, v)) / 100.0 * (y0 - y1)

    out = _open(chart_id, width, height, title, desc)
    for v in (0, 20, 40, 60, 80, 100):
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{_f(y(v))}" y2="{_f(y(v))}" stroke="#d0d7de" stroke-width="1"/>'
                   f'<text x="{x0 - 6}" y="{_f(y(v) + 4)}" text-anchor="end" fill="#57606a">{v}</text>')
    for c in cuts:
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{_f(y(c))}" y2="{_f(y(c))}" stroke="#8c959f" '
                   'stroke-dasharray="4 3" stroke-width="1"/>')
    out.append(f'<text transform="translate(14 {_f((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle" '
               f'fill="#57606a">{escape(y_label)}</text>')
    out.append(f'<text x="{_f((x0 + x1) / 2)}" y="{height - 6}" text-anchor="middle" fill="#57606a">as-of date</text>')
    if not points:
        out.append(f'<text x="{_f((x0 + x1) / 2)}" y="{_f((y0 + y1) / 2)}" text-anchor="middle">no scores yet</text>')
        out.append("</svg>")
        return Markup("".join(out))
    days = [p.day for p in points]
    x, labelled = _date_axis(days, x0 + 36, x1 - 36)  # room for the first and last date label
    for d in labelled:
        out.append(f'<text x="{_f(x(d))}" y="{y0 + 16}" text-anchor="middle" fill="#57606a">{d.isoformat()}</text>')
    if len(points) > 1:
        path = " ".join(f"{_f(x(p.day))},{_f(y(p.score))}" for p in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="#57606a" stroke-width="2"/>')
    marked = False
    for p in points:
        cx, cy = _f(x(p.day)), _f(y(p.score))
        tip = f"{p.day.isoformat()}: {p.score:.0f}" + (f" ({p.note})" if p.note else "")
        fill = colours.get(p.band, "#24292f")
        out.append(f'<circle cx="{cx}" cy="{cy}" r="4.5" fill="{fill}"><title>{escape(tip)}</title></circle>')
        if p.note:
            marked = True
            out.append(f'<circle class="marker" cx="{cx}" cy="{cy}" r="9" fill="none" stroke="#cf222e" '
                       f'stroke-width="2"><title>{escape(tip)}</title></circle>')
    if marked:
        out.append(f'<circle cx="{x1 - 90}" cy="{top + 2}" r="6" fill="none" stroke="#cf222e" stroke-width="2"/>'
                   f'<text x="{x1 - 80}" y="{top + 6}" fill="#57606a">{escape(marker_label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Spread:
    """The score distribution of one date: quantiles 10, 25, 50, 75, 90 and how many scores."""

    day: date
    q10: float
    q25: float
    q50: float
    q75: float
    q90: float
    n: int


def distribution_chart(spreads: Sequence[Spread], *, chart_id: str, title: str, desc: str,
                       cuts: tuple[float, ...] = (), width: int = 720, height: int = 260) -> Markup:
    """Score distribution per as-of date: a 10–90% bar, a darker 25–75% box and the median, on 0–100."""
    left, right, top, bottom = 52, 16, 30, 46
    x0, x1, y0, y1 = left, width - right, height - bottom, top

    def y(v: float) -> float:
        return y0 - max(0.0, min(100.0, v)) / 100.0 * (y0 - y1)

    out = _open(chart_id, width, height, title, desc)
    for v in (0, 20, 40, 60, 80, 100):
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{_f(y(v))}" y2="{_f(y(v))}" stroke="#d0d7de"/>'
                   f'<text x="{x0 - 6}" y="{_f(y(v) + 4)}" text-anchor="end" fill="#57606a">{v}</text>')
    for c in cuts:
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{_f(y(c))}" y2="{_f(y(c))}" stroke="#8c959f" stroke-dasharray="4 3"/>')
    out.append(f'<text transform="translate(14 {_f((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle" '
               'fill="#57606a">score (0–100)</text>')
    out.append(f'<text x="{_f((x0 + x1) / 2)}" y="{height - 6}" text-anchor="middle" fill="#57606a">as-of date</text>')
    if spreads:
        slot = (x1 - x0) / len(spreads)
        w = max(4.0, min(28.0, slot * 0.5))
        step = max(1, math.ceil(len(spreads) / 7))
        for i, s in enumerate(spreads):
            cx = x0 + slot * (i + 0.5)
            tip = (f"{s.day.isoformat()}: {s.n:,} scores, median {s.q50:.0f}, middle half {s.q25:.0f}–{s.q75:.0f}, "
                   f"10–90% {s.q10:.0f}–{s.q90:.0f}")
            out.append(f'<g><title>{escape(tip)}</title>'
                       f'<rect x="{_f(cx - w / 2)}" y="{_f(y(s.q90))}" width="{_f(w)}" '
                       f'height="{_f(max(0.5, y(s.q10) - y(s.q90)))}" fill="#c8d8f0"/>'
                       f'<rect x="{_f(cx - w / 2)}" y="{_f(y(s.q75))}" width="{_f(w)}" '
                       f'height="{_f(max(0.5, y(s.q25) - y(s.q75)))}" fill="#1f6feb"/>'
                       f'<line x1="{_f(cx - w / 2 - 2)}" x2="{_f(cx + w / 2 + 2)}" y1="{_f(y(s.q50))}" '
                       f'y2="{_f(y(s.q50))}" stroke="#0b2f66" stroke-width="3"/></g>')
            if i % step == 0 or i == len(spreads) - 1:
                out.append(f'<text x="{_f(cx)}" y="{y0 + 16}" text-anchor="middle" fill="#57606a">'
                           f'{s.day.isoformat()}</text>')
    lx = x0 + 8
    out.append(f'<rect x="{lx}" y="{top + 2}" width="12" height="10" fill="#c8d8f0"/>'
               f'<text x="{lx + 16}" y="{top + 11}" fill="#57606a">10–90%</text>'
               f'<rect x="{lx + 70}" y="{top + 2}" width="12" height="10" fill="#1f6feb"/>'
               f'<text x="{lx + 86}" y="{top + 11}" fill="#57606a">25–75%</text>'
               f'<line x1="{lx + 140}" x2="{lx + 156}" y1="{top + 7}" y2="{top + 7}" stroke="#0b2f66" stroke-width="3"/>'
               f'<text x="{lx + 160}" y="{top + 11}" fill="#57606a">median</text>')
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, chart_id: str,
              title: str, desc: str, value_label: str, fmt=money, colours: Sequence[str] | None = None,
              width: int = 640, bar_height: int = 16) -> Markup:
    """Horizontal grouped bars: one row per category, one bar per series, values labelled at the bar end."""
    colours = list(colours or PALETTE)
    label_w = min(200, 14 + 7 * max((len(c) for c in categories), default=4))
    left, right, top = label_w, 70, 44 if len(series) > 1 else 30
    group = bar_height * len(series) + 8
    height = int(top + group * max(1, len(categories)) + 42)
    x0, x1 = left, width - right
    values = [v for _, vs in series for v in vs if v == v]
    vmax = max([0.0, *values])
    ticks = nice_ticks(0.0, vmax or 1.0, 4)
    top_value = ticks[-1]

    def x(v: float) -> float:
        return x0 + max(0.0, v) / top_value * (x1 - x0)

    out = _open(chart_id, width, height, title, desc)
    axis_y = top + group * max(1, len(categories))
    for t in ticks:
        out.append(f'<line x1="{_f(x(t))}" x2="{_f(x(t))}" y1="{top - 4}" y2="{axis_y}" stroke="#d0d7de"/>'
                   f'<text x="{_f(x(t))}" y="{axis_y + 14}" text-anchor="middle" fill="#57606a">{escape(fmt(t))}</text>')
    out.append(f'<text x="{_f((x0 + x1) / 2)}" y="{height - 6}" text-anchor="middle" fill="#57606a">'
               f'{escape(value_label)}</text>')
    if len(series) > 1:
        lx = x0
        for k, (name, _) in enumerate(series):
            out.append(f'<rect x="{_f(lx)}" y="24" width="12" height="10" fill="{colours[k % len(colours)]}"/>'
                       f'<text x="{_f(lx + 16)}" y="33" fill="#57606a">{escape(name)}</text>')
            lx += 24 + 7 * len(name)
    for i, cat in enumerate(categories):
        gy = top + group * i
        shown = cat if len(cat) <= 28 else cat[:27] + "…"
        out.append(f'<text x="{x0 - 6}" y="{_f(gy + group / 2)}" text-anchor="end" dominant-baseline="middle">'
                   f'<title>{escape(cat)}</title>{escape(shown)}</text>')
        for k, (name, vs) in enumerate(series):
            v = vs[i]
            by = gy + 4 + k * bar_height
            colour = colours[k % len(colours)]
            if v == v:
                out.append(f'<rect x="{x0}" y="{_f(by)}" width="{_f(max(0.5, x(v) - x0))}" '
                           f'height="{bar_height - 3}" fill="{colour}"><title>{escape(f"{cat}, {name}: {fmt(v)}")}'
                           f'</title></rect><text x="{_f(x(v) + 4)}" y="{_f(by + bar_height / 2)}" '
                           f'dominant-baseline="middle" fill="#24292f">{escape(fmt(v))}</text>')
    out.append("</svg>")
    return Markup("".join(out))
