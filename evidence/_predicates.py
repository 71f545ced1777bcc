"""Predicate schemas: each predicate kind's published JSON Schema, and the check run on every
verified predicate.

The schemas (``schemas/KIND.schema.json``, Draft 2020-12) are the contract. They are checked
with ``jsonschema-rs`` (the whole of Draft 2020-12, in Rust; each validator built once per
kind), which also words the error and names the field when a predicate is refused. It
replaced a hand-written compiler of a keyword subset: on the demo's predicates, parsed afresh
as on the verification path, it is as fast as that compiler on the smallest (an approval) and
2.4–5.8× faster on the others, and over 100× faster than ``jsonschema``
(``bench/bench_schema.py``, docs/benchmarks.md), with no keyword subset to keep in step. Patterns follow
ECMA-262 as the specification says: ``$`` is the end of the string, so a value with a trailing
newline does not match ``^…$``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from ._statement import PREDICATE_TYPES
from .errors import PredicateSchemaError

# The package's own schema files (read from the package folder: importlib.resources cost
# a promote 25 ms of imports for the same path).
_SCHEMAS = Path(__file__).parent / "schemas"


@functools.cache
def predicate_schema(kind: str) -> dict[str, Any]:
    """The published JSON Schema of one predicate kind, as shipped in ``slmgate.evidence/schemas``."""
    if kind not in PREDICATE_TYPES:
        raise ValueError(f"unknown predicate kind {kind!r}")
    text = (_SCHEMAS / f"{kind}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    jsonschema_rs.meta.validate(schema)  # a schema that is not Draft 2020-12 never checks anything
    return schema


@functools.cache
def _validator(kind: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(predicate_schema(kind))


def check_predicate(kind: str, predicate: Any) -> None:
    """Raise ``PredicateSchemaError`` naming the first offending field (shallowest, then in path
    order) when ``predicate`` does not match the JSON Schema of ``kind``."""
    validator = _validator(kind)
    try:
        if validator.is_valid(predicate):
            return
        errors = list(validator.iter_errors(predicate))
    except ValueError as exc:  # a value the validator cannot take in: never accepted
        raise PredicateSchemaError(f"{kind} predicate: cannot be checked ({exc})", field="(predicate)",
                                   advice=f"see the {kind} JSON Schema shipped in slmgate.evidence/schemas",
                                   ) from exc
    if not errors:  # is_valid and iter_errors disagree: refuse, and say so
        raise PredicateSchemaError(f"{kind} predicate: refused by the schema check, which names no error",
                                   advice="this is a bug in slmgate; please report it with the envelope")

    def located(error: jsonschema_rs.ValidationError) -> list[str]:
        path = [str(p) for p in error.instance_path]
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
            path.append(error.kind.property)  # the field that is missing, not its parent
        return path

    errors.sort(key=lambda e: (len(located(e)), located(e)))
    first = errors[0]
    field = ".".join(located(first)) or "(predicate)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise PredicateSchemaError(
        f"{kind} predicate: {field}: {first.message}{more}", field=field,
        advice=f"see the {kind} JSON Schema shipped in slmgate.evidence/schemas",
    )
