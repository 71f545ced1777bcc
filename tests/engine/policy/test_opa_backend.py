"""Parity: the same bundle gives the same decisions in-process (regopy) and on an OPA server
(opa-python-client against a loopback server speaking OPA's v1 REST API)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from slmgate.engine import CompiledPolicy, load_bundle
from slmgate.engine.policy._opa import OpaServerPolicy
from slmgate.engine.policy._policytest import _apply
from slmgate.evidence import format_time
from slmgate.evidence.errors import PolicyError
from tests.conftest import NOW, World
from tests.opa_loopback import opa_loopback


def _cases(world: World) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    doc = yaml.safe_load((world.policies / "tests" / "promotion.yaml").read_text())
    return [(c["name"], _apply(doc["base"], c, "promotion.yaml")) for c in doc["cases"]]


def test_parity_table_on_both_backends(world: World) -> None:
    bundle = load_bundle(world.policies)
    embedded = CompiledPolicy(bundle)
    with opa_loopback() as (url, state):
        server = OpaServerPolicy(bundle, url)
        cases = _cases(world)
        outcomes = set()
        for name, facts in cases:
            here, there = embedded.evaluate(facts), server.evaluate(facts)
            assert here == there, name
            outcomes.add(here["outcome"])
        assert state.queries == len(cases)
    assert outcomes == {"approve", "review", "deny"}


def test_undefined_on_the_server_is_a_policy_error(world: World, tmp_path: Path) -> None:
    dest = world.policies_with_rego(tmp_path / "p", "package slmgate.promotion\nimport rego.v1\n"
                                    "decision := {\"outcome\": \"approve\"} if input.never\n")
    with opa_loopback() as (url, _):
        server = OpaServerPolicy(load_bundle(dest), url)
        with pytest.raises(PolicyError, match="undefined"):
            server.evaluate({"never": False})


def test_builtin_error_on_the_server_is_a_policy_error(world: World, tmp_path: Path) -> None:
    dest = world.policies_with_rego(tmp_path / "p", "package slmgate.promotion\nimport rego.v1\n"
                                    "decision := {\"n\": to_number(\"x\")}\n")
    with opa_loopback() as (url, _):
        server = OpaServerPolicy(load_bundle(dest), url)
        with pytest.raises(PolicyError, match="failed to evaluate"):
            server.evaluate({})


def test_unreachable_server_denies_with_exit_4(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence())
    r = subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "promote", str(req),
                        "--policies", str(world.policies), "--engine", "opa",
                        "--opa-url", "http://127.0.0.1:9", "--at", format_time(NOW + timedelta(minutes=1))],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "OPA server" in r.stderr


def test_promote_on_opa_gives_the_embedded_exit_codes(world: World, tmp_path: Path) -> None:
    at = format_time(NOW + timedelta(minutes=1))
    good = world.request(tmp_path / "good", world.standard_evidence())
    bad = world.request(tmp_path / "bad", world.standard_evidence(stress_accuracy=0.5))
    with opa_loopback() as (url, state):
        for req, code in ((good, 0), (bad, 1)):
            runs = [subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "promote", str(req),
                                    "--policies", str(world.policies), "--at", at, "--format", "json",
                                    *extra], capture_output=True, text=True, timeout=120)
                    for extra in ([], ["--engine", "opa", "--opa-url", url])]
            assert [r.returncode for r in runs] == [code, code], [r.stderr for r in runs]
            a, b = (json.loads(r.stdout) for r in runs)
            assert a["findings"] == b["findings"] and a["checks"] == b["checks"]
        assert state.queries == 2
