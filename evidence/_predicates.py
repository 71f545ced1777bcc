"""Predicate schemas: each predicate kind's published JSON Schema, and the check run on every
verified predicate.

The schemas (``schemas/KIND.schema.json``, Draft 2020-12) are the contract. The accept path
runs each compiled once (``_schema_compiler``: about 40 times faster than ``jsonschema``);
``jsonschema`` checks the schemas themselves and, when a predicate is refused, words the error
and names the field. Should the two ever disagree, the predicate is refused.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

from ._schema_compiler import Check, compile_schema
from ._statement import PREDICATE_TYPES
from .errors import PredicateSchemaError


@functools.cache
def predicate_schema(kind: str) -> dict[str, Any]:
    """The published JSON Schema of one predicate kind, as shipped in ``slmgate.evidence/schemas``."""
    if kind not in PREDICATE_TYPES:
        raise ValueError(f"unknown predicate kind {kind!r}")
    text = (resources.files("slmgate.evidence") / "schemas" / f"{kind}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def _validators(kind: str) -> tuple[Check, jsonschema.protocols.Validator]:
    schema = predicate_schema(kind)
    return compile_schema(schema), jsonschema.Draft202012Validator(schema)


def check_predicate(kind: str, predicate: Any) -> None:
    """Raise ``PredicateSchemaError`` naming the first offending field (shallowest, then in path
    order) when ``predicate`` does not match the JSON Schema of ``kind``."""
    fast, validator = _validators(kind)
    if fast(predicate):
        return
    errors = sorted(validator.iter_errors(predicate),
                    key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    if not errors:  # the two checkers disagree: refuse, and say so
        raise PredicateSchemaError(
            f"{kind} predicate: refused by the compiled schema check although jsonschema accepts it",
            advice="this is a bug in slmgate; please report it with the envelope")
    first = errors[0]
    path = [str(p) for p in first.absolute_path]
    if first.validator == "required" and isinstance(first.instance, dict):
        path.extend(str(k) for k in first.validator_value if k not in first.instance)
        path = path[: len(first.absolute_path) + 1]
    field = ".".join(path) or "(predicate)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise PredicateSchemaError(
        f"{kind} predicate: {field}: {first.message}{more}", field=field,
        advice=f"see the {kind} JSON Schema shipped in slmgate.evidence/schemas",
    )
