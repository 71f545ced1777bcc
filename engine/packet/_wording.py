"""Policy messages as a reader reads them. Rego's ``%v`` writes lists as JSON (``[]``,
``["a", "b"]``), objects as ``{}`` and floats with binary noise (``-0.009678000000000001``); the
packet shows "none", "a, b" and the number at the precision it was measured with. A pure
function of its input, so a re-rendered packet has the same bytes."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["NONE", "reader_text", "reader_value"]

NONE = "none"
_DECODER = json.JSONDecoder()
# A decimal with more fractional digits than any metric is measured with: noise to round off.
_LONG_DECIMAL = re.compile(r"-?\d+\.\d{7,}")
_SIGNIFICANT = 10  # binary noise sits past the 15th digit; measurements stop well before the 10th


def reader_value(value: Any) -> str:
    """One decoded JSON value in words: a list "a, b" (a nested list in parentheses), an object
    "key: value", empty ones and null "none", a float without noise."""
    if value is None or value == [] or value == {}:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return ", ".join(f"({reader_value(v)})" if isinstance(v, list) and len(v) > 1
                         else reader_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {reader_value(v)}" for k, v in value.items())
    return str(value)


def _number(value: float) -> str:
    text = repr(float(f"{value:.{_SIGNIFICANT}g}"))
    return text[:-2] if text.endswith(".0") else text


def reader_text(message: Any) -> Any:
    """``message`` with each embedded JSON list or object in words and long decimals rounded to
    ten significant digits; anything but a string is returned as it is."""
    if not isinstance(message, str):
        return message
    out: list[str] = []
    i = 0
    while i < len(message):
        ch = message[i]
        if ch in "[{":
            try:
                value, end = _DECODER.raw_decode(message, i)
            except ValueError:
                value, end = None, -1
            if end > i and isinstance(value, (list, dict)):
                out.append(reader_value(value))
                i = end
                continue
        out.append(ch)
        i += 1
    return _LONG_DECIMAL.sub(lambda m: _number(float(m.group())), "".join(out))
