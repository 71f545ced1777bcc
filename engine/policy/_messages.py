"""Finding and check messages, rendered in one place and the same for every engine.

The policy does not format its messages with Rego's ``sprintf``: regopy 1.5 prints floats with
17 significant digits (``0.9975000000000001``), does not know ``%q`` (the literal stays and the
arguments shift) and carries the quotes of some strings into the text; OPA and regorus format
as Go does. So a check's message is a ``{"format": ..., "args": [...]}`` object and
``render_message`` formats it here as OPA's ``sprintf`` would: ``%s``/``%v`` print a string
argument as it is and any other value in Rego syntax (``["a", "b"]``, ``{"k": 1}``), numbers in
their shortest round-trip form (``0.9975``, ``1e-07``), ``%d`` an integer, ``%q`` a quoted
string, ``%%`` a percent sign. A message object among the arguments is rendered first.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

__all__ = ["is_message", "render_message", "render_messages"]

_VERB = re.compile(r"%([%sdvqtfg])")
_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # what json.dumps(ensure_ascii=False) escapes


def _quoted(text: str) -> str:
    return f'"{text}"' if not _ESCAPED.search(text) else json.dumps(text, ensure_ascii=False)


def is_message(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) == 2 and "format" in value and "args" in value
            and isinstance(value["format"], str) and isinstance(value["args"], list))


def _number(value: int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))  # OPA keeps 3.0 as the JSON number 3
    return repr(value)  # the shortest text that reads back as the same float, as Go prints it


def _rego(value: Any) -> str:
    """A value in Rego syntax, as OPA's ``%v`` prints a non-string argument."""
    kind = type(value)  # JSON's own types first; anything else by the checks below
    if kind is str:
        return _quoted(value)
    if kind is list:
        return "[" + ", ".join(map(_rego, value)) + "]"
    if is_message(value):
        return json.dumps(render_message(value), ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, list):
        return "[" + ", ".join(_rego(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_quoted(k)}: {_rego(v)}"
                               for k, v in sorted(value.items())) + "}"
    return str(value)


def _plain(value: Any) -> str:
    if is_message(value):
        return render_message(value)
    if isinstance(value, str):
        return value
    return _rego(value)


@lru_cache(maxsize=4096)
def _template(fmt: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A format string cut into its literal texts and its verbs (``%%`` folded into the text,
    as it takes no argument): ``texts[i]`` comes before ``verbs[i]``, ``texts[-1]`` after the
    last. Parsed once per format string: the format strings are the policy's own text, so the
    cache holds what one bundle says, never anything of the facts."""
    texts, verbs, text, position = [], [], [], 0
    for match in _VERB.finditer(fmt):
        text.append(fmt[position:match.start()])
        position = match.end()
        if match.group(1) == "%":
            text.append("%")
            continue
        texts.append("".join(text))
        verbs.append(match.group(1))
        text = []
    text.append(fmt[position:])
    texts.append("".join(text))
    return tuple(texts), tuple(verbs)


def _argument(verb: str, value: Any) -> str:
    """One argument as ``verb`` prints it."""
    kind = type(value)
    if kind is str and (verb == "s" or verb == "v"):  # the common cases first
        return value  # type: ignore[no-any-return]
    if (kind is float or kind is int) and (verb == "s" or verb == "v"):
        return _number(value)
    if verb == "d" and isinstance(value, int | float) and not isinstance(value, bool) \
            and float(value).is_integer():
        return str(int(value))
    if verb == "q" and isinstance(value, str | dict):
        return json.dumps(_plain(value), ensure_ascii=False)
    return _plain(value)


def render_message(message: Any) -> str:
    """The text of one message: a string as it is, a message object formatted (module doc)."""
    if isinstance(message, str):
        return message
    if not is_message(message):
        return _rego(message)
    args = message["args"]
    texts, verbs = _template(message["format"])
    if len(verbs) == len(args):  # every verb has its argument: the policy's messages
        out = [texts[0]]
        for i, value in enumerate(args):
            kind, verb = type(value), verbs[i]
            if verb != "s" and verb != "v":
                out.append(_argument(verb, value))
            elif kind is str:
                out.append(value)
            elif kind is float:  # what _number prints, its checks in one
                out.append(str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value))
            elif kind is int:
                out.append(str(value))
            elif kind is list:
                out.append(_rego(value))
            else:
                out.append(_argument(verb, value))
            out.append(texts[i + 1])
        return "".join(out)
    out = [texts[0]]
    for i, verb in enumerate(verbs):
        out.append(_argument(verb, args[i]) if i < len(args) else f"%!{verb}(MISSING)")
        out.append(texts[i + 1])
    if len(args) > len(verbs):
        out.append("%!(EXTRA " + ", ".join(_rego(a) for a in args[len(verbs):]) + ")")
    return "".join(out)


def render_messages(output: dict[str, Any]) -> dict[str, Any]:
    """The policy's decision with every check's and finding's message rendered."""
    out = dict(output)
    for key in ("checks", "findings"):
        rows = output.get(key)
        if isinstance(rows, list):
            out[key] = [{**row, "message": render_message(row["message"])}
                        if isinstance(row, dict) and "message" in row else row for row in rows]
    return out
