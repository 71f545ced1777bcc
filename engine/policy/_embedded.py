"""Evaluating the Rego decision in-process with regopy: compiled once, queried by entrypoint,
strict built-in errors on, and every error or undefined result turned into a refusal."""

from __future__ import annotations

import contextlib
import ctypes
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.evidence.errors import PolicyError

if TYPE_CHECKING:
    import regopy

ENTRYPOINT = "slmgate/promotion/decision"


def _regopy() -> Any:
    """regopy, imported on first use, so commands that evaluate no policy never load it.

    regopy 1.5's shared library interposes ``operator new/delete``; loaded before torch, the two
    C++ runtimes mix allocators and the process aborts ("double free or corruption", measured
    here). Loading the system libstdc++ globally first makes both resolve to one allocator, in
    either import order (tested in tests/engine/test_policy_engine.py)."""
    if "regopy" not in sys.modules:
        # Without a system libstdc++, torch must simply be imported first.
        with contextlib.suppress(OSError):
            ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)
    import regopy

    return regopy


def compile_bundle(bundle: PolicyBundle, entrypoints: list[str], what: str = "the policy") -> Any:
    """The bundle's modules and data (as ``data.slmgate``) compiled once with strict built-in
    errors, with plans for ``entrypoints``; a compile error is a ``PolicyError``."""
    rego = _regopy()
    builder = rego.Interpreter()
    builder.strict_built_in_errors = True
    try:
        builder.add_data({"slmgate": bundle.data})
        for name, source in bundle.rego_modules.items():
            builder.add_module(name, source)
        return builder.build(None, entrypoints)
    except rego.RegoError as exc:
        raise PolicyError(f"{what} does not compile: {_first_line(exc)}",
                          advice="run `slmgate policy check`") from exc


class CompiledPolicy:
    """The bundle's Rego compiled into a regopy bundle; ``evaluate`` is safe to call repeatedly."""

    def __init__(self, bundle: PolicyBundle, entrypoint: str = ENTRYPOINT) -> None:
        self.entrypoint = entrypoint
        self._rego = _regopy()
        self._compiled = compile_bundle(bundle, [entrypoint])

    _compiled: regopy.Bundle

    def evaluate(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The entrypoint's value for ``facts``; raises ``PolicyError`` on error or undefined."""
        rego = self._rego
        runner = rego.Interpreter()
        runner.strict_built_in_errors = True
        try:
            runner.set_input(facts)
            output = runner.query_bundle_entrypoint(self._compiled, self.entrypoint)
        except (rego.RegoError, ValueError) as exc:  # regopy raises ValueError on odd output
            raise PolicyError(f"policy evaluation failed: {_first_line(exc)}") from exc
        if not output.ok():
            raise PolicyError(f"policy evaluation failed at {self.entrypoint} (built-in error)")
        text = str(output)
        if text.strip() == "undefined":
            raise PolicyError(f"{self.entrypoint} is undefined for these facts")
        try:
            expressions = json.loads(text)["expressions"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise PolicyError(f"unreadable policy output: {text[:200]!r}") from exc
        if len(expressions) != 1 or not isinstance(expressions[0], dict):
            raise PolicyError(f"{self.entrypoint} must be one object, got {text[:200]!r}")
        return expressions[0]


def _first_line(exc: Exception) -> str:
    """The readable part of a regopy error: each message with its file, not the whole AST."""
    text = str(exc)
    found = re.findall(r"\(error \d+:([^|\s)]+)[^(]*\(errormsg \d+:([^)]*)\)", text)
    if found:
        unique = list(dict.fromkeys(f"{where}: {msg.strip()}" for where, msg in found))
        return "; ".join(unique[:5])
    messages = re.findall(r"errormsg \d+:([^)]*)\)", text)
    if messages:
        return "; ".join(dict.fromkeys(m.strip() for m in messages))
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__
