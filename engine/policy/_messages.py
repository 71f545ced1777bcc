"""Finding and check messages, rendered in one place and the same for every engine.

The policy does not format its messages with Rego's ``sprintf``: regopy 1.5 prints floats with
17 significant digits (``0.9975000000000001``), does not know ``%q`` (the literal stays and the
arguments shift) and carries the quotes of some strings into the text; OPA and regorus format
as Go does. So a rule returns ``fmt(format, args)`` — ``{"format": ..., "args": [...]}`` — and
``render_message`` formats it here as OPA's ``sprintf`` would: ``%s``/``%v`` print a string
argument as it is and any other value in Rego syntax (``["a", "b"]``, ``{"k": 1}``), numbers in
their shortest round-trip form (``0.9975``, ``1e-07``), ``%d`` an integer, ``%q`` a quoted
string, ``%%`` a percent sign. A message object among the arguments is rendered first.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["is_message", "render_message", "render_messages"]

_VERB = re.compile(r"%([%sdvqtfg])")


def is_message(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"format", "args"}
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
    if is_message(value):
        return json.dumps(render_message(value), ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_rego(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_rego(v)}"
                               for k, v in sorted(value.items())) + "}"
    return str(value)


def _plain(value: Any) -> str:
    if is_message(value):
        return render_message(value)
    if isinstance(value, str):
        return value
    return _rego(value)


def render_message(message: Any) -> str:
    """The text of one message: a string as it is, a ``fmt`` object formatted (module doc)."""
    if isinstance(message, str):
        return message
    if not is_message(message):
        return _rego(message)
    args = list(message["args"])
    out: list[str] = []
    position = 0
    for match in _VERB.finditer(message["format"]):
        out.append(message["format"][position:match.start()])
        position = match.end()
        verb = match.group(1)
        if verb == "%":
            out.append("%")
            continue
        if not args:
            out.append(f"%!{verb}(MISSING)")
            continue
        value = args.pop(0)
        if verb == "d" and isinstance(value, int | float) and not isinstance(value, bool) \
                and float(value).is_integer():
            out.append(str(int(value)))
        elif verb == "q" and isinstance(value, str | dict):
            out.append(json.dumps(_plain(value), ensure_ascii=False))
        else:
            out.append(_plain(value))
    out.append(message["format"][position:])
    if args:
        out.append("%!(EXTRA " + ", ".join(_rego(a) for a in args) + ")")
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
