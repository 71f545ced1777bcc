"""Inline SVG charts of the program report, in the packet charts' style (``packet._chart``: same
fonts, colours and fixed-precision numbers, so the same records give the same bytes): a
trajectory — one value per week as a line with its points, the charter's baseline and target as
dashed lines — and the exit codes of the gate's decisions per week as stacked bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["exit_code_chart", "trajectory_chart"]

_W, _H = 240.0, 96.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 30.0, 6.0, 8.0, 16.0
_STYLE = ("<style>text{font-family:'slmgate Sans','DejaVu Sans',sans-serif;font-size:6px;"
          "fill:#1f2933}.ax{fill:#52606d}.lb{font-size:5.5px}.na{fill:#b42318}</style>")
_LINE = "#1e7b34"
_SECOND = "#486581"
_BASE = "#9aa5b1"
_TARGET = "#102a43"
_EXIT_COLOURS = {"0": "#1e7b34", "1": "#b42318", "3": "#d9a21b", "4": "#7b1e1e"}
_EXIT_NAMES = {"0": "approved", "1": "denied", "3": "review", "4": "unverified"}


def _f(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def number(value: float | None, unit: str = "") -> str:
    """A value as the report prints it: ratios as percentages, small money with 4 decimals."""
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    text = f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def _open(width: float, height: float, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_f(width)} '
            f'{_f(height)}" width="{_f(width)}pt" height="{_f(height)}pt" role="img" '
            f'aria-label="{escape(label)}">', _STYLE]


def trajectory_chart(series: Sequence[tuple[str, float]], *, baseline: float | None,
                     target: float | None, unit: str, label: str,
                     second: Sequence[tuple[str, float]] = (), second_label: str = "") -> str:
    """An SVG line chart of ``series`` (week, value), oldest first, with the baseline and target
    drawn across; ``second`` is a second series on the same scale (escalation share)."""
    parts = _open(_W, _H, label)
    if not series:
        parts += [f'<text x="{_f(_LEFT)}" y="{_f(_H / 2)}" class="na">no weeks recorded</text>', "</svg>"]
        return "".join(parts)
    values = [v for _, v in series] + [v for _, v in second]
    values += [v for v in (baseline, target) if v is not None]
    top = max(values) * 1.1 or 1.0
    if unit == "ratio" and max(values) <= 1:
        top = min(top, 1.0)  # a share never reads above 100 %
    bottom = 0.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = len(series)

    def x(i: int) -> float:
        return _LEFT + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return _TOP + plot_h * (1 - (v - bottom) / (top - bottom))

    parts.append(f'<line x1="{_f(_LEFT)}" y1="{_f(_TOP + plot_h)}" x2="{_f(_W - _RIGHT)}" '
                 f'y2="{_f(_TOP + plot_h)}" stroke="#9aa5b1" stroke-width="0.5"/>')
    for tick in (bottom, (bottom + top) / 2, top):
        parts.append(f'<text x="{_f(_LEFT - 2)}" y="{_f(y(tick) + 2)}" class="ax lb" '
                     f'text-anchor="end">{escape(number(tick, unit if unit == "ratio" else ""))}</text>')
    # The baseline is named at the right end of its line, the target at the left, so the two
    # labels never overlap when the lines are close.
    for value, colour, name, lx, anchor in ((baseline, _BASE, "baseline", _W - _RIGHT - 1, "end"),
                                            (target, _TARGET, "target", _LEFT + 1, "start")):
        if value is not None:
            parts.append(f'<line x1="{_f(_LEFT)}" y1="{_f(y(value))}" x2="{_f(_W - _RIGHT)}" '
                         f'y2="{_f(y(value))}" stroke="{colour}" stroke-width="0.8" '
                         f'stroke-dasharray="2,1.5"/>')
            parts.append(f'<text x="{_f(lx)}" y="{_f(y(value) - 1.5)}" class="lb" '
                         f'text-anchor="{anchor}" fill="{colour}">{name} '
                         f'{escape(number(value, unit if unit == "ratio" else ""))}</text>')
    for points, colour in ((second, _SECOND), (series, _LINE)):
        if not points:
            continue
        path = " ".join(f"{_f(x(i))},{_f(y(v))}" for i, (_, v) in enumerate(points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.2"/>')
        parts += [f'<circle cx="{_f(x(i))}" cy="{_f(y(v))}" r="1.4" fill="{colour}"/>'
                  for i, (_, v) in enumerate(points)]
    step = max(1, n // 6)
    for i, (week, _) in enumerate(series):
        if i % step == 0 or i == n - 1:
            parts.append(f'<text x="{_f(x(i))}" y="{_f(_H - 6)}" class="ax lb" '
                         f'text-anchor="middle">{escape(week[5:])}</text>')
    legend = [(label, _LINE)] + ([(second_label, _SECOND)] if second else [])
    lx = _LEFT
    for name, colour in legend:
        parts.append(f'<rect x="{_f(lx)}" y="{_f(_H - 4)}" width="5" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{_f(lx + 7)}" y="{_f(_H - 1)}" class="lb">{escape(name)}</text>')
        lx += 8 + 3.2 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def exit_code_chart(weeks: Sequence[Mapping[str, Any]]) -> str:
    """Stacked bars, one per ISO week: how many decisions exited 0, 1, 3 and 4."""
    parts = _open(_W, _H, "exit codes per week")
    if not weeks:
        parts += [f'<text x="{_f(_LEFT)}" y="{_f(_H / 2)}" class="na">no decisions in the period</text>',
                  "</svg>"]
        return "".join(parts)
    totals = [sum(w["counts"].values()) for w in weeks]
    top = max(max(totals), 1)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / len(weeks)
    bar = min(18.0, slot * 0.7)
    for value, at in ((top, _TOP + 2), (0, _TOP + plot_h)):
        parts.append(f'<text x="{_f(_LEFT - 2)}" y="{_f(at)}" class="ax lb" text-anchor="end">{value}</text>')
    for i, w in enumerate(weeks):
        x = _LEFT + slot * i + (slot - bar) / 2
        base = _TOP + plot_h
        for code in ("0", "1", "3", "4"):
            count = int(w["counts"].get(code, 0))
            if not count:
                continue
            h = plot_h * count / top
            base -= h
            parts.append(f'<rect x="{_f(x)}" y="{_f(base)}" width="{_f(bar)}" height="{_f(h)}" '
                         f'fill="{_EXIT_COLOURS[code]}"><title>exit {code}: {count}</title></rect>')
        parts.append(f'<text x="{_f(x + bar / 2)}" y="{_f(_H - 6)}" class="ax lb" '
                     f'text-anchor="middle">{escape(str(w["week"])[5:])}</text>')
    lx = _LEFT
    for code, colour in _EXIT_COLOURS.items():
        name = f"{code} {_EXIT_NAMES[code]}"
        parts.append(f'<rect x="{_f(lx)}" y="{_f(_H - 4)}" width="5" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{_f(lx + 7)}" y="{_f(_H - 1)}" class="lb">{escape(name)}</text>')
        lx += 10 + 3.2 * len(name)
    parts.append("</svg>")
    return "".join(parts)
