"""A JSON Schema (Draft 2020-12) subset compiled to one Python function per schema.

``jsonschema`` needs about a millisecond per predicate; the verification path cannot spend
that on every envelope. ``compile_schema`` turns a schema into the source of a function that
returns ``True`` or ``False`` for an instance, with every keyword inlined, and ``exec``s it once.
It supports exactly the keywords in ``KEYWORDS`` and refuses a schema that uses any other (or a
``$ref`` outside ``#/$defs/``, or a recursive one), so a rule can never be skipped silently.
``jsonschema`` stays the reference: the tests compare both verdicts on generated documents, and
``check_predicate`` refuses a predicate when they differ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
KEYWORDS = frozenset({
    "$ref", "type", "enum", "const", "required", "properties", "additionalProperties",
    "propertyNames", "minProperties", "items", "minItems", "pattern", "minLength", "minimum",
    "if", "then",
}) | ANNOTATIONS

# How each JSON type is tested on a parsed value; bool is an int in Python, not a JSON number.
_TYPE_TESTS = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "isinstance({v}, str)",
    "null": "{v} is None",
    "boolean": "isinstance({v}, bool)",
    "number": "(isinstance({v}, (int, float)) and not isinstance({v}, bool))",
    # Draft 2020-12: an integer is any number with a zero fractional part (1.0 included).
    "integer": "((isinstance({v}, int) and not isinstance({v}, bool)) or "
               "(isinstance({v}, float) and isfinite({v}) and {v} == int({v})))",
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema means it: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class _Generator:
    """Writes the source of one module: ``check`` for the root, ``_c1``... for ``if`` schemas."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {}) if isinstance(root, Mapping) else {}
        self.namespace: dict[str, Any] = {"isfinite": math.isfinite, "json_equal": json_equal}
        self.functions: list[list[str]] = []
        self.counter = 0
        self.resolving: list[str] = []

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, value: Any) -> str:
        key = self.name("k")
        self.namespace[key] = value
        return key

    def function(self, schema: Any) -> str:
        """A module-level function for ``schema``; returns its name."""
        fname = self.name("_c")
        body: list[str] = []
        self.emit(schema, "x", body, 1)
        self.functions.append([f"def {fname}(x):", *body, "    return True"])
        return fname

    def emit(self, schema: Any, v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        if schema is True:
            return
        if schema is False:
            out.append(f"{pad}return False")
            return
        if not isinstance(schema, dict):
            raise ValueError(f"a schema must be an object or a boolean, got {schema!r}")
        unknown = sorted(set(schema) - KEYWORDS)
        if unknown:
            raise ValueError(f"keyword(s) {unknown} are not supported by the compiled check")
        known = None  # the one JSON type the value is known to have past the type check
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            tests = " or ".join(_TYPE_TESTS[n].format(v=v) for n in names)
            out.append(f"{pad}if not ({tests}):")
            out.append(f"{pad}    return False")
            known = names[0] if len(names) == 1 else None
        if "$ref" in schema:
            self.ref(schema["$ref"], v, out, depth)
        if "enum" in schema and all(isinstance(o, str) for o in schema["enum"]):
            options = self.constant(frozenset(schema["enum"]))
            out.append(f"{pad}if not (isinstance({v}, str) and {v} in {options}):")
            out.append(f"{pad}    return False")
        elif "enum" in schema:
            options = self.constant(list(schema["enum"]))
            out.append(f"{pad}if not any(json_equal({v}, o) for o in {options}):")
            out.append(f"{pad}    return False")
        if "const" in schema:
            out.append(f"{pad}if not json_equal({v}, {self.constant(schema['const'])}):")
            out.append(f"{pad}    return False")
        if "minimum" in schema:
            out.append(f"{pad}if {_TYPE_TESTS['number'].format(v=v)} and {v} < {schema['minimum']!r}:")
            out.append(f"{pad}    return False")
        for kind, keywords in (("object", self.object), ("array", self.array), ("string", self.string)):
            block = keywords(schema, v, depth)
            if block and known == kind:  # no need to test the type again
                out.extend(line[4:] for line in block[1:])
            elif block and known is None:
                out.extend(block)
        if "if" in schema:
            condition = self.function(schema["if"])
            block: list[str] = []
            self.emit(schema.get("then", True), v, block, depth + 1)
            if block:
                out.append(f"{pad}if {condition}({v}):")
                out.extend(block)

    def ref(self, pointer: str, v: str, out: list[str], depth: int) -> None:
        prefix = "#/$defs/"
        name = pointer[len(prefix):]
        if not pointer.startswith(prefix) or name not in self.defs:
            raise ValueError(f"unsupported $ref {pointer!r}: only #/$defs/NAME")
        if name in self.resolving:
            raise ValueError(f"recursive $ref {pointer!r} is not supported by the compiled check")
        self.resolving.append(name)
        self.emit(self.defs[name], v, out, depth)
        self.resolving.pop()

    def object(self, schema: Mapping[str, Any], v: str, depth: int) -> list[str]:
        """The object keywords, under an ``isinstance(v, dict)`` guard; [] when there are none."""
        pad = "    " * depth
        block: list[str] = []
        inner = pad + "    "
        if "minProperties" in schema:
            block += [f"{inner}if len({v}) < {int(schema['minProperties'])}:", f"{inner}    return False"]
        for key in schema.get("required", ()):
            block += [f"{inner}if {key!r} not in {v}:", f"{inner}    return False"]
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            value = self.name("v")
            body: list[str] = []
            self.emit(sub, value, body, depth + 2)
            if body:
                block += [f"{inner}if {key!r} in {v}:", f"{inner}    {value} = {v}[{key!r}]", *body]
        for keyword in ("additionalProperties", "propertyNames"):
            if keyword not in schema:
                continue
            k, value = self.name("k"), self.name("v")
            body = []
            if keyword == "additionalProperties":
                self.emit(schema[keyword], value, body, depth + 3)
                known = self.constant(frozenset(properties))
                if body:
                    block += [f"{inner}for {k}, {value} in {v}.items():",
                              f"{inner}    if {k} not in {known}:", *body]
            else:
                self.emit(schema[keyword], k, body, depth + 2)
                if body:
                    block += [f"{inner}for {k} in {v}:", *body]
        return [f"{pad}if isinstance({v}, dict):", *block] if block else []

    def array(self, schema: Mapping[str, Any], v: str, depth: int) -> list[str]:
        pad, inner = "    " * depth, "    " * (depth + 1)
        block: list[str] = []
        if "minItems" in schema:
            block += [f"{inner}if len({v}) < {int(schema['minItems'])}:", f"{inner}    return False"]
        if "items" in schema:
            item = self.name("v")
            body: list[str] = []
            self.emit(schema["items"], item, body, depth + 2)
            if body:
                block += [f"{inner}for {item} in {v}:", *body]
        return [f"{pad}if isinstance({v}, list):", *block] if block else []

    def string(self, schema: Mapping[str, Any], v: str, depth: int) -> list[str]:
        pad, inner = "    " * depth, "    " * (depth + 1)
        block: list[str] = []
        if "minLength" in schema:
            block += [f"{inner}if len({v}) < {int(schema['minLength'])}:", f"{inner}    return False"]
        if "pattern" in schema:
            search = self.constant(re.compile(schema["pattern"]).search)
            block += [f"{inner}if {search}({v}) is None:", f"{inner}    return False"]
        return [f"{pad}if isinstance({v}, str):", *block] if block else []


def compile_schema(schema: Any) -> Check:
    """Compile a schema that uses only ``KEYWORDS`` into a function instance -> bool;
    ``ValueError`` for anything else."""
    generator = _Generator(schema)
    root = generator.function(schema)
    source = "\n\n".join("\n".join(lines) for lines in generator.functions)
    exec(compile(source, f"<compiled schema {schema.get('$id', '') if isinstance(schema, dict) else ''}>",
                 "exec"), generator.namespace)
    check: Check = generator.namespace[root]
    return check


def compiled_source(schema: Any) -> str:
    """The generated source, for reading and debugging."""
    generator = _Generator(schema)
    generator.function(schema)
    return "\n\n".join("\n".join(lines) for lines in generator.functions)
