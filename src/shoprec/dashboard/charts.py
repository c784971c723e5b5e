"""Inline SVG charts drawn server-side (no JavaScript, no CDN): line charts and horizontal bar charts.

    line_chart([0, 1, 2], {"loss": [0.9, 0.5, 0.4]}, title="Training loss", x_label="epoch")
    bar_chart(["GET /v1/...", ...], [120, 80], title="Requests per route")

Every label is escaped; colours are SVG presentation attributes, so a strict Content-Security-Policy
(no inline styles) still shows them. The answer is a `Markup` ready to drop into a template.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
Format = Callable[[float], str]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    count = math.ceil((hi - start) / step - 1e-9) + 1
    return [round(start + i * step, 12) for i in range(count)]


def short_number(value: float) -> str:
    """12 -> "12", 1500 -> "1.5k", 0.123456 -> "0.123"."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


class _Frame:
    """Plot area and the data -> pixel mapping of one chart."""

    def __init__(self, width: int, height: int, left: int, xs: tuple[float, float], ys: tuple[float, float]) -> None:
        self.width, self.height = width, height
        self.x0, self.x1, self.y0, self.y1 = left, width - 16, 46, height - 40  # title and legend above y0
        self.xlo, self.xhi = xs
        self.ylo, self.yhi = ys

    def px(self, x: float) -> float:
        span = self.xhi - self.xlo or 1.0
        return self.x0 + (x - self.xlo) / span * (self.x1 - self.x0)

    def py(self, y: float) -> float:
        span = self.yhi - self.ylo or 1.0
        return self.y1 - (y - self.ylo) / span * (self.y1 - self.y0)


def _open(width: int, height: int, title: str) -> list[str]:
    t = escape(title)
    return [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{t}"><title>{t}</title>',
            f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13" font-weight="600" '
            f'fill="#111827">{t}</text>']


def _tick_label(x: str, y: str, anchor: str, text: str) -> str:
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="10" fill="#374151">{escape(text)}</text>'


def _y_axis(f: _Frame, ticks: Sequence[float], label: str, fmt: Format) -> list[str]:
    out = [f'<line x1="{f.x0}" y1="{f.y0}" x2="{f.x0}" y2="{f.y1}" stroke="#9ca3af"/>']
    for t in ticks:
        y = f.py(t)
        out.append(f'<line x1="{f.x0}" y1="{y:.1f}" x2="{f.x1}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   + _tick_label(f"{f.x0 - 4}", f"{y + 4:.1f}", "end", fmt(t)))
    if label:
        out.append(f'<text x="12" y="{(f.y0 + f.y1) / 2:.0f}" font-size="11" fill="#374151" text-anchor="middle" '
                   f'transform="rotate(-90 12 {(f.y0 + f.y1) / 2:.0f})">{escape(label)}</text>')
    return out


def _x_axis(f: _Frame, ticks: Sequence[float], label: str, fmt: Format) -> list[str]:
    out = [f'<line x1="{f.x0}" y1="{f.y1}" x2="{f.x1}" y2="{f.y1}" stroke="#9ca3af"/>']
    for t in ticks:
        x = f.px(t)
        out.append(f'<line x1="{x:.1f}" y1="{f.y1}" x2="{x:.1f}" y2="{f.y1 + 4}" stroke="#9ca3af"/>'
                   + _tick_label(f"{x:.1f}", f"{f.y1 + 15}", "middle", fmt(t)))
    if label:
        out.append(f'<text x="{(f.x0 + f.x1) / 2:.0f}" y="{f.height - 4}" text-anchor="middle" font-size="11" '
                   f'fill="#374151">{escape(label)}</text>')
    return out


def _legend(f: _Frame, names: Sequence[str]) -> list[str]:
    out, x = [], float(f.x0)
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x:.0f}" y="{f.y0 - 16}" width="10" height="3" fill="{colour}"/>'
                   f'<text x="{x + 13:.0f}" y="{f.y0 - 12}" font-size="10" fill="#374151">{escape(name)}</text>')
        x += 22 + 6.2 * len(name)
    return out


def line_chart(x: Sequence[float], series: Mapping[str, Sequence[float]], *, title: str, x_label: str = "",
               y_label: str = "", x_format: Format = short_number, y_format: Format = short_number,
               width: int = 640, height: int = 240, zero: bool = True) -> Markup:
    """One line per series over shared x values (non-finite points are skipped); an empty chart says so.
    `zero`: the y axis starts at 0 (counts); False fits it to the data (a loss that moves little)."""
    points = {name: [(float(a), float(b)) for a, b in zip(x, ys, strict=False) if math.isfinite(float(b))]
              for name, ys in series.items()}
    values = [b for pts in points.values() for _, b in pts]
    xs = [float(a) for a in x]
    if not values or not xs:
        return _empty(width, height, title)
    y_ticks = nice_ticks(min(0.0, min(values)) if zero else min(values), max(values))
    x_ticks = nice_ticks(min(xs), max(xs)) if len(xs) > 1 else [xs[0]]
    x_ticks = [t for t in x_ticks if min(xs) <= t <= max(xs)] or [xs[0]]
    f = _Frame(width, height, 52, (min(xs), max(xs)), (y_ticks[0], y_ticks[-1]))
    out = _open(width, height, title) + _y_axis(f, y_ticks, y_label, y_format) + _x_axis(f, x_ticks, x_label,
                                                                                         x_format)
    for i, (name, pts) in enumerate(points.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{f.px(a):.1f},{f.py(b):.1f}" for a, b in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}">'
                   f'<title>{escape(name)}</title></polyline>')
        if len(pts) == 1:
            a, b = pts[0]
            out.append(f'<circle cx="{f.px(a):.1f}" cy="{f.py(b):.1f}" r="3" fill="{colour}"/>')
    if len(points) > 1:
        out += _legend(f, list(points))
    return Markup("".join(out) + "</svg>")


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, value_format: Format = short_number,
              width: int = 640, bar_height: int = 18) -> Markup:
    """Horizontal bars, one per label, with the value written at the end of each bar."""
    if not labels:
        return _empty(width, 80, title)
    label_w = min(260, 12 + 6 * max(len(s) for s in labels))
    height = 36 + len(labels) * (bar_height + 6)
    top = max(max(values), 0.0) or 1.0
    out = _open(width, height, title)
    span = width - label_w - 70
    for row, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 26 + row * (bar_height + 6)
        w = max(value, 0.0) / top * span
        shown = label if len(label) <= 42 else label[:41] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" font-size="11" '
                   f'fill="#374151">{escape(shown)}<title>{escape(label)}</title></text>'
                   f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{PALETTE[0]}"/>'
                   f'<text x="{label_w + w + 4:.1f}" y="{y + bar_height * 0.7:.1f}" font-size="11" '
                   f'fill="#111827">{escape(value_format(value))}</text>')
    return Markup("".join(out) + "</svg>")


def interval_chart(labels: Sequence[str], estimates: Sequence[float], intervals: Sequence[tuple[float, float]], *,
                   title: str, value_format: Format = short_number, width: int = 640) -> Markup:
    """A point with its confidence interval per label (e.g. a variant's CTR and its 95% interval)."""
    if not labels:
        return _empty(width, 80, title)
    hi = max([b for _, b in intervals] + list(estimates) + [1e-12])
    ticks = nice_ticks(0.0, hi)
    label_w = min(200, 12 + 7 * max(len(s) for s in labels))
    height = 80 + len(labels) * 26
    f = _Frame(width, height, label_w, (ticks[0], ticks[-1]), (0.0, 1.0))
    out = _open(width, height, title) + _x_axis(f, ticks, "", value_format)
    for row, (label, est, (a, b)) in enumerate(zip(labels, estimates, intervals, strict=True)):
        y = f.y0 + 14 + row * 26
        out.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end" font-size="11" fill="#374151">'
                   f'{escape(label)}</text>'
                   f'<line x1="{f.px(a):.1f}" y1="{y}" x2="{f.px(b):.1f}" y2="{y}" stroke="{PALETTE[row % 8]}" '
                   f'stroke-width="3"/><circle cx="{f.px(est):.1f}" cy="{y}" r="4.5" fill="{PALETTE[row % 8]}"/>')
    return Markup("".join(out) + "</svg>")


def _empty(width: int, height: int, title: str) -> Markup:
    out = _open(width, height, title)
    out.append(f'<text x="{width / 2:.0f}" y="{height / 2 + 8:.0f}" text-anchor="middle" font-size="12" '
               f'fill="#6b7280">no data yet</text>')
    return Markup("".join(out) + "</svg>")
