"""``loads_strict`` reads a text with no escape and no unsafe character by a shorter walk
(repeated keys and depth only); whatever it accepts or refuses, and the place it names, must be
what the full walk gives."""

from __future__ import annotations

import pytest

from slmgate.engine.request import _strict_json
from slmgate.engine.request._strict_json import MAX_DEPTH, loads_strict
from slmgate.evidence.errors import InputError


def _full(text: str) -> tuple[str, object]:
    node = _strict_json._DECODER.decode(text)
    try:
        return "ok", _strict_json._build(node, "$", 0, "f.json")
    except InputError as exc:
        return "refused", str(exc)


def _fast(text: str) -> tuple[str, object]:
    try:
        return "ok", loads_strict(text.encode(), source="f.json")
    except InputError as exc:
        return "refused", str(exc)


_TEXTS = [
    *("[" * d + leaf + "]" * d for d in range(MAX_DEPTH - 2, MAX_DEPTH + 3)
      for leaf in ("1", "[]", "{}", "[1]", '{"a": 1}')),
    *('{"k": ' * d + "1" + "}" * d for d in range(MAX_DEPTH - 1, MAX_DEPTH + 2)),
    '{"a": 1, "a": 2}',
    '{"a": {"b": [{"c": 1}, {"c": 2, "c": 3}]}}',
    '{"model": {"name": "m", "version": "1", "version": "2"}}',
    '{"a": [1, 2.5, null, true, {"b": "c"}], "d": {}}',
    '{\t"a":\r\n 1}',  # JSON's whitespace between tokens is not a control character in a string
]


@pytest.mark.parametrize("text", _TEXTS)
def test_the_short_walk_decides_as_the_full_walk(text: str) -> None:
    assert "\\" not in text
    assert _fast(text) == _full(text)


def test_a_repeated_key_is_named_by_its_path_on_the_short_walk() -> None:
    outcome, message = _fast('{"a": {"b": [{"c": 1}, {"c": 2, "c": 3}]}}')
    assert outcome == "refused" and "$.a.b[1].c" in str(message) and "twice" in str(message)


@pytest.mark.parametrize("text", ['{"a": "x\\u202ey"}', '{"a": "x\u202ey"}', '{"a": "x\\ny"}',
                                  '{"a": "x\\ud800"}', '{"a\\u0000": 1}'])
def test_an_unsafe_character_is_refused_however_it_is_written(text: str) -> None:
    outcome, message = _fast(text)
    assert outcome == "refused"
    assert "character U+" in str(message) or "surrogate" in str(message)
