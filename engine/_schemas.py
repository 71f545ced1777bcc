"""JSON Schemas for the documents that cross a boundary, and one way to check them.

Checked by ``jsonschema-rs`` (a Rust implementation of the whole of Draft 2020-12), which is
two orders of magnitude faster than ``jsonschema`` on these documents: what-if re-checks every
recorded decision, and spent 40 % of its time in ``jsonschema``. A document it refuses is
checked again by ``jsonschema``, only to word the error (its messages name the first failing
field by path); should the two ever disagree about a refusal, the document is still refused.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from slmgate.evidence.errors import InputError

# The package's own schema files (read from the package folder: importlib.resources cost
# a promote 25 ms of imports for the same path).
_SCHEMAS = Path(__file__).parent / "schemas"


@functools.cache
def schema(name: str) -> dict[str, Any]:
    text = (_SCHEMAS / f"{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def validator(name: str) -> jsonschema_rs.Draft202012Validator:
    """A validator built once per schema (building one costs milliseconds)."""
    return jsonschema_rs.Draft202012Validator(schema(name))


@functools.cache
def _wording_validator(name: str) -> Any:
    import jsonschema  # only to word a refusal

    return jsonschema.Draft202012Validator(schema(name))


def first_problem(doc: Any, name: str) -> tuple[str, str, int] | None:
    """None when ``doc`` is valid; else the first failing field (by path order, dotted; empty
    for the document itself), its message, and how many problems there are in all."""
    try:
        if validator(name).is_valid(doc):
            return None
    except (ValueError, TypeError, OverflowError) as exc:  # not a JSON document at all
        return "", f"not a JSON document: {exc}", 1
    errors = sorted(_wording_validator(name).iter_errors(doc),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        return ".".join(str(p) for p in errors[0].absolute_path), errors[0].message, len(errors)
    # The two validators disagree: refused all the same, in jsonschema-rs's words.
    rs = next(iter(validator(name).iter_errors(doc)), None)
    return (".".join(str(p) for p in getattr(rs, "instance_path", ())),
            str(getattr(rs, "message", "refused by jsonschema-rs")), 1)


def check_document(doc: Any, name: str, *, source: str) -> None:
    """Raise ``InputError`` naming ``source`` and the first failing field (by path order)."""
    problem = first_problem(doc, name)
    if problem is not None:
        field, message, count = problem
        more = f" (and {count - 1} more problem(s))" if count > 1 else ""
        raise InputError(f"{message}{more}", file=source, field=field or "(document)",
                         advice=f"see the {name} JSON Schema shipped in slmgate.engine/schemas")
