"""The embedded engine's fail-open traps, each turned into a refusal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slmgate.engine import CompiledPolicy, load_bundle
from slmgate.evidence.errors import PolicyError
from tests.conftest import World


def test_regopy_then_torch_in_one_process_does_not_crash() -> None:
    code = ("from slmgate.engine.policy._embedded import _regopy\n"
            "rego = _regopy()\n"
            "i = rego.Interpreter(); i.add_module('a.rego', 'package a\\nx := 1\\n')\n"
            "b = i.build(None, ['a/x'])\n"
            "import torch\n"
            "assert float(torch.ones(4).sum()) == 4.0\n"
            "print(str(rego.Interpreter().query_bundle_entrypoint(b, 'a/x')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"expressions":[1]' in r.stdout


def _policy(world: World, tmp_path, rego: str) -> CompiledPolicy:  # type: ignore[no-untyped-def]
    return CompiledPolicy(load_bundle(world.policies_with_rego(tmp_path / "p", rego)))


def test_builtin_error_is_an_error_not_undefined(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = _policy(world, tmp_path, 'package slmgate.promotion\nimport rego.v1\n'
                'decision := {"outcome": "approve", "n": to_number("x")}\n')
    with pytest.raises(PolicyError, match="built-in error"):
        p.evaluate({})


def test_undefined_decision_is_refused(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = _policy(world, tmp_path, 'package slmgate.promotion\nimport rego.v1\n'
                'decision := {"outcome": "approve"} if input.never\n')
    with pytest.raises(PolicyError, match="undefined"):
        p.evaluate({"never": False})


def test_false_valued_decision_is_refused(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = _policy(world, tmp_path, 'package slmgate.promotion\nimport rego.v1\ndecision := false\n')
    with pytest.raises(PolicyError):
        p.evaluate({})


def test_non_object_decision_is_refused(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = _policy(world, tmp_path, 'package slmgate.promotion\nimport rego.v1\ndecision := "approve"\n')
    with pytest.raises(PolicyError, match="must be one object"):
        p.evaluate({})


def test_compiled_policy_gives_the_same_answer_twice(world: World) -> None:
    bundle = load_bundle(world.policies)
    p = CompiledPolicy(bundle)
    facts = {"request": {"change_classes": ["yolo"]}, "evidence": {"present": [], "rejected": [],
             "approvals": []}, "waivers": {"active": [], "expired": []}}
    assert p.evaluate(facts) == p.evaluate(facts)
    assert p.evaluate(facts)["outcome"] == "deny"
