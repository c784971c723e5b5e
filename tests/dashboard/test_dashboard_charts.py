"""The SVG chart module: ticks, escaping, empty data, one mark per value, skipped non-finite points."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from shoprec.dashboard.charts import bar_chart, interval_chart, line_chart, nice_ticks, short_number


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    ticks = nice_ticks(0.61, 0.65)
    assert ticks[0] <= 0.61 and ticks[-1] >= 0.65 and len(ticks) <= 7
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]  # a flat series still gets an axis
    assert nice_ticks(math.nan, 1) == [0.0, 1.0]


def test_short_number() -> None:
    assert [short_number(v) for v in (12, 1500, 2_500_000, 0.123456)] == ["12", "1.5k", "2.5M", "0.123"]


def test_line_chart_is_valid_svg_with_one_line_per_series_and_escaped_labels() -> None:
    svg = str(line_chart([1, 2, 3], {"a<b": [1, 2, 3], "c": [3, math.nan, 1]}, title="T & <x>", x_label="epoch"))
    root = ET.fromstring(svg)  # well-formed: every label was escaped
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2
    assert len(lines[1].get("points", "").split()) == 2  # the NaN point is skipped
    assert "T &amp; &lt;x&gt;" in svg and "a&lt;b" in svg and "<x>" not in svg


def test_empty_charts_say_so() -> None:
    for svg in (line_chart([], {}, title="t"), bar_chart([], [], title="t"), interval_chart([], [], [], title="t")):
        assert "no data yet" in svg


def test_bar_chart_draws_proportional_bars() -> None:
    svg = str(bar_chart(["a", "b"], [10, 5], title="bars"))
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert len(widths) == 2 and widths[0] == 2 * widths[1]
    ET.fromstring(svg)


def test_interval_chart_marks_each_estimate_inside_its_interval() -> None:
    svg = str(interval_chart(["control", "test"], [0.1, 0.2], [(0.05, 0.15), (0.15, 0.25)], title="CTR"))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    dots = [float(c.get("cx", "0")) for c in root.findall(f"{ns}circle")]
    spans = [(float(ln.get("x1", "0")), float(ln.get("x2", "0"))) for ln in root.findall(f"{ns}line")
             if ln.get("stroke-width") == "3"]
    assert len(dots) == 2 and all(a < d < b for d, (a, b) in zip(dots, spans, strict=True))
