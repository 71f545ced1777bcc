"""Evaluating the Rego decision in-process with regorus (microsoft/regorus, a Rust Rego
interpreter; Python bindings from the registry package ``gordon-to-regorus``): the modules and
data loaded once into a prototype engine, each decision evaluated on a clone of it through the
JSON API, and every error or undefined result turned into a refusal.

Why one working engine and not a clone per decision: a clone re-prepares every module on its
first evaluation (about 4 ms for promotion.rego, measured here, against 0.1 ms for the same
data with a one-rule module), while ``set_input_json`` on the same engine starts each
evaluation from the new input with no rule value carried over (checked in tests by evaluating
every decision case in shuffled order, with errors in between, against fresh engines). The
working engine is replaced by a fresh clone after any error, and a lock keeps one evaluation
at a time.

Why the JSON API (``eval_rule_as_json``) and not ``eval_rule``: the latter hands Rego sets back
as Python sets, and the RVM (compiled) mode gave wrong decisions on two of the policy's cases
when measured here; the tree-walking interpreter through JSON matched OPA on all of them.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import orjson

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.evidence.errors import PolicyError

RULE = "data.slmgate.promotion.decision"


def _regorus() -> Any:
    try:
        import regorus
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise PolicyError("the regorus engine is not installed (package gordon-to-regorus)",
                          advice="reinstall slmgate, or use --engine regopy") from exc
    return regorus


def _non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity is anywhere in ``value`` (orjson writes them as null)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is float:
            if not math.isfinite(node):
                return True
        elif type(node) is dict:
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)
    return False


def input_json(facts: dict[str, Any]) -> str:
    """``facts`` as the JSON input of one evaluation; a non-finite number is a refusal, as
    JSON has none (``json.dumps`` would write ``NaN``, which regorus refuses to read)."""
    try:
        data = orjson.dumps(facts)
    except (orjson.JSONEncodeError, TypeError):  # an integer beyond 64 bits, a key not a string
        return json.dumps(facts)
    if b"null" in data and _non_finite(facts):
        raise PolicyError("the facts hold a number that is not finite (NaN or infinity)")
    return data.decode()


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # an integer beyond 64 bits: json reads it
        return json.loads(text)


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:300] if lines else type(exc).__name__


class RegorusPolicy:
    """The bundle's Rego in a regorus engine; ``evaluate`` is safe to call repeatedly."""

    def __init__(self, bundle: PolicyBundle, rule: str = RULE) -> None:
        regorus = _regorus()
        self.rule = rule
        engine = regorus.Engine()
        try:
            engine.add_data_json(json.dumps({"slmgate": bundle.data}, default=str))
            for name, source in sorted(bundle.rego_modules.items()):
                engine.add_policy(name, source)
            # Evaluate once on empty input: a policy that cannot even start is a compile error.
            engine.clone().eval_query_as_json("x := 1")
        except (RuntimeError, ValueError) as exc:
            raise PolicyError(f"the policy does not load in regorus: {_first_line(exc)}",
                              advice="run `slmgate policy check`") from exc
        self._prototype = engine
        self._engine = engine.clone()
        self._lock = threading.Lock()

    def evaluate(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The decision for ``facts``; raises ``PolicyError`` on error or undefined."""
        data = input_json(facts)
        with self._lock:
            try:
                self._engine.set_input_json(data)
                text = self._engine.eval_rule_as_json(self.rule)
            except (RuntimeError, ValueError) as exc:
                self._engine = self._prototype.clone()
                raise PolicyError(f"policy evaluation failed: {_first_line(exc)}") from exc
        try:
            value = _loads(text) if text is not None else None
        except ValueError as exc:  # orjson's and json's decode errors both are
            raise PolicyError(f"unreadable policy output: {str(text)[:200]!r}") from exc
        if value is None:
            raise PolicyError(f"{self.rule} is undefined for these facts")
        if not isinstance(value, dict):
            raise PolicyError(f"{self.rule} must be one object, got {str(text)[:200]!r}")
        return value
