"""JSON Schemas for the documents that cross a boundary, and one way to check them."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

from slmgate.evidence.errors import InputError


@functools.cache
def schema(name: str) -> dict[str, Any]:
    text = (resources.files("slmgate.engine") / "schemas" / f"{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator built once per schema (building one costs milliseconds)."""
    return jsonschema.Draft202012Validator(schema(name))


def check_document(doc: Any, name: str, *, source: str) -> None:
    """Raise ``InputError`` naming ``source`` and the first failing field (by path order)."""
    errors_of = validator(name)
    errors = sorted(errors_of.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        field = ".".join(str(p) for p in first.absolute_path) or "(document)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise InputError(f"{first.message}{more}", file=source, field=field,
                         advice=f"see the {name} JSON Schema shipped in slmgate.engine/schemas")
