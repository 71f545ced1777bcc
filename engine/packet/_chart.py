"""Inline SVG bar charts for the packet's release diff: baseline against candidate for each metric
of one eval layer, with the gate's bound drawn across the bars. Pure Python, no script, no fetch;
numbers are written with fixed precision so the same metrics give the same bytes.

Hand-written on purpose (the review for issue 17): a charting library (matplotlib, pygal) is a
large dependency for a few rectangles per layer, and its SVG is not byte-stable by default
(generated ids, version comments), while ``packet verify`` re-renders every page and compares
them byte for byte — a chart that changed with the library version would fail verification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["layer_chart"]

_WIDTH = 170.0  # user units ~ points; the template sizes the chart by its width
_LABEL_H = 8.0
_BAR_H = 6.0
_GAP = 2.0
_BLOCK = _LABEL_H + 2 * _BAR_H + _GAP + 5.0
_BAR_X = 2.0
_BAR_W = 118.0
_LEGEND_H = 10.0
_MIN_BAR_W = 1.2  # a reported 0 still draws a sliver, so "0" never reads as "missing"
_COLOURS = {"baseline": "#9aa5b1", True: "#1e7b34", False: "#b42318", None: "#486581"}


def _f(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _value(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _bounds(row: Mapping[str, Any]) -> list[tuple[str, float]]:
    raw = row.get("bounds") or {}
    if not isinstance(raw, Mapping):
        return []
    return [(k, float(raw[k])) for k in ("min", "max")
            if isinstance(raw.get(k), (int, float)) and not isinstance(raw.get(k), bool)]


def _scale(rows: Sequence[Mapping[str, Any]]) -> float:
    """The value at the right end of the bars: 1 for rates and scores, else the largest value."""
    values = [v for r in rows for v in (_value(r, "baseline"), _value(r, "candidate")) if v is not None]
    values += [b for r in rows for _, b in _bounds(r)]
    top = max((abs(v) for v in values), default=1.0)
    return 1.0 if top <= 1.0 else top * 1.1


def _bar(y: float, value: float | None, scale: float, colour: str, label: str) -> list[str]:
    if value is None:
        return [f'<text x="{_f(_BAR_X)}" y="{_f(y + _BAR_H - 1)}" class="na">{label}: not reported</text>']
    width = max(_MIN_BAR_W, max(0.0, min(1.0, abs(value) / scale)) * _BAR_W)
    return [
        f'<rect x="{_f(_BAR_X)}" y="{_f(y)}" width="{_f(_BAR_W)}" height="{_f(_BAR_H)}" fill="#f0f4f8"/>',
        f'<rect x="{_f(_BAR_X)}" y="{_f(y)}" width="{_f(width)}" height="{_f(_BAR_H)}" fill="{colour}"/>',
        f'<text x="{_f(_BAR_X + _BAR_W + 3)}" y="{_f(y + _BAR_H - 1)}" class="v">{label} '
        f"{escape(_f4(value))}</text>",
    ]


def _f4(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def layer_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """An SVG element: per metric its name, a grey baseline bar and a candidate bar (green when its
    gate passed, red when it failed, blue when ungated), and a dashed line at each min/max bound,
    named ("gate min 0.8") in the value column on the metric's own line."""
    scale = _scale(rows)
    height = len(rows) * _BLOCK + _LEGEND_H
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_f(_WIDTH)} '
        f'{_f(height)}" width="{_f(_WIDTH)}pt" height="{_f(height)}pt" role="img">',
        "<style>text{font-family:'slmgate Sans','DejaVu Sans',sans-serif;font-size:6px;fill:#1f2933}"
        ".m{font-size:6.5px;font-weight:bold}.v{fill:#243b53}.g{fill:#102a43;font-style:italic}"
        ".na{fill:#b42318}</style>",
    ]
    for i, row in enumerate(rows):
        top = i * _BLOCK
        name = escape(str(row.get("metric") or "—"))
        parts.append(f'<text x="{_f(_BAR_X)}" y="{_f(top + _LABEL_H - 2)}" class="m">{name}</text>')
        if bounds := _bounds(row):
            # The gate's bounds are named in the value column, clear of the bars and their markers.
            gate = " ".join(f"{kind} {_f4(bound)}" for kind, bound in bounds)
            parts.append(f'<text x="{_f(_BAR_X + _BAR_W + 3)}" y="{_f(top + _LABEL_H - 2)}" '
                         f'class="g">gate {escape(gate)}</text>')
        y_base = top + _LABEL_H
        y_cand = y_base + _BAR_H + _GAP
        parts += _bar(y_base, _value(row, "baseline"), scale, _COLOURS["baseline"], "base")
        colour = _COLOURS.get(row.get("passed"), _COLOURS[None])
        parts += _bar(y_cand, _value(row, "candidate"), scale, colour, "cand")
        for _kind, bound in _bounds(row):
            x = _BAR_X + max(0.0, min(1.0, abs(bound) / scale)) * _BAR_W
            parts.append(
                f'<line x1="{_f(x)}" y1="{_f(y_base - 1)}" x2="{_f(x)}" y2="{_f(y_cand + _BAR_H + 1)}"'
                f' stroke="#102a43" stroke-width="0.8" stroke-dasharray="1.5,1"/>'
            )
    legend_y = len(rows) * _BLOCK + 2
    parts += [
        f'<rect x="{_f(_BAR_X)}" y="{_f(legend_y)}" width="6" height="5" fill="{_COLOURS["baseline"]}"/>',
        f'<text x="{_f(_BAR_X + 8)}" y="{_f(legend_y + 4.5)}">baseline</text>',
        f'<rect x="{_f(_BAR_X + 40)}" y="{_f(legend_y)}" width="6" height="5" fill="{_COLOURS[True]}"/>',
        f'<text x="{_f(_BAR_X + 48)}" y="{_f(legend_y + 4.5)}">candidate (gate passed)</text>',
        f'<rect x="{_f(_BAR_X + 128)}" y="{_f(legend_y)}" width="6" height="5" fill="{_COLOURS[False]}"/>',
        f'<text x="{_f(_BAR_X + 136)}" y="{_f(legend_y + 4.5)}">failed</text>',
        "</svg>",
    ]
    return "".join(parts)
