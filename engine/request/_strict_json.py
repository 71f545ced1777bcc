"""Request JSON as the gate accepts it: one meaning per document, or a refusal naming the JSON path.

Python's ``json`` takes the last of two repeated keys, ``NaN`` and ``Infinity``, ``1e999`` (as
``inf``), lone surrogates and any nesting its stack allows; a reviewer reading the file may see
something else than the gate decides on. Here each of those is an ``InputError`` naming the file
and the JSON path (``$.model.name``), and so is any string carrying a control character (C0, C1),
a bidirectional override or a zero-width character: such a string can forge a line in the gate's
output or show a reviewer another name than the one compared.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from slmgate.evidence.errors import InputError

__all__ = ["MAX_DEPTH", "loads_strict"]

MAX_DEPTH = 32

# C0 and C1 controls, DEL, the bidi embeddings/overrides/isolates and marks, zero-width
# characters and the BOM used as one.
_UNSAFE_TEXT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
# The same characters outside JSON's whitespace (tab, line feed, carriage return): a text
# without any of them, and without a backslash (no escape can make one), holds none in a string.
_UNSAFE_RAW = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


class _Pairs(list[tuple[str, Any]]):
    """An object as the parser saw it: its pairs in order, repeats kept for the check."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows a 64-bit float")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > 2**63:
        raise ValueError(f"integer {text[:40]}… is out of range")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_refuse_constant,
                            parse_float=_finite_float, parse_int=_bounded_int)


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else \
        f"{parent}[{json.dumps(key, ensure_ascii=True)}]"


def _text(value: str, where: str, source: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError("holds a lone surrogate (\\ud800-\\udfff without its pair)",
                         file=source, field=where) from exc
    bad = _UNSAFE_TEXT.search(value)
    if bad:
        raise InputError(f"holds the control or invisible character U+{ord(bad.group()):04X} at "
                         f"offset {bad.start()}; refused", file=source, field=where)
    return value


def _build(node: Any, where: str, depth: int, source: str) -> Any:
    if depth > MAX_DEPTH:
        raise InputError(f"nested deeper than {MAX_DEPTH} levels", file=source, field=where)
    if isinstance(node, _Pairs):
        out: dict[str, Any] = {}
        for key, value in node:
            here = _path(where, _text(key, where, source))
            if key in out:
                raise InputError(f"key {key!r} appears twice in one object", file=source,
                                 field=here)
            out[key] = _build(value, here, depth + 1, source)
        return out
    if isinstance(node, list):
        return [_build(v, _path(where, i), depth + 1, source) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _text(node, where, source)
    return node


class _Refused(Exception):
    """Something ``_build`` refuses: it runs again to name where."""


def _build_plain(node: Any, depth: int) -> Any:
    """``_build`` for a text with no unsafe character and no escape: only repeated keys and
    depth to check, and no JSON path worked out unless something is refused."""
    if depth >= MAX_DEPTH and node:  # its members would be deeper than the limit
        raise _Refused
    if type(node) is _Pairs:
        out = dict(node)
        if len(out) != len(node):
            raise _Refused
        for key, value in out.items():
            if type(value) is _Pairs or type(value) is list:
                out[key] = _build_plain(value, depth + 1)
        return out
    if type(node) is list:
        return [_build_plain(v, depth + 1) if type(v) is _Pairs or type(v) is list else v
                for v in node]
    return node


def loads_strict(raw: bytes, *, source: str) -> Any:
    """Parse UTF-8 JSON strictly (see the module docstring); errors name ``source``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 (byte {exc.start})", file=source) from exc
    try:
        node = _DECODER.decode(text)
    except RecursionError as exc:
        raise InputError(f"nested deeper than {MAX_DEPTH} levels", file=source, field="$") from exc
    except ValueError as exc:  # JSONDecodeError, and the hooks' refusals
        raise InputError(f"not valid JSON ({exc})", file=source) from exc
    if "\\" not in text and not _UNSAFE_RAW.search(text):
        try:
            return _build_plain(node, 0)
        except _Refused:
            pass  # the full walk below names the place
    return _build(node, "$", 0, source)
