"""The regorus engine evaluates every decision on one working engine: nothing of one decision
may reach the next. Every decision case, in shuffled order and with failing evaluations in
between, must give the bytes a fresh engine gives."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml

from slmgate.engine import load_bundle
from slmgate.engine.policy._policytest import _apply
from slmgate.engine.policy._regorus import RegorusPolicy
from slmgate.evidence import canonical_json
from slmgate.evidence.errors import PolicyError
from tests.conftest import World


def _cases(world: World) -> list[dict[str, Any]]:
    doc = yaml.safe_load((world.policies / "tests" / "promotion.yaml").read_text())
    return [_apply(doc["base"], c, "promotion.yaml") for c in doc["cases"]]


def test_a_reused_engine_carries_nothing_from_one_decision_to_the_next(session_world: World) -> None:
    bundle = load_bundle(session_world.policies)
    cases = _cases(session_world)
    fresh = [canonical_json(RegorusPolicy(bundle).evaluate(facts)) for facts in cases]
    outcomes = {yaml.safe_load(f)["outcome"] for f in fresh}
    assert outcomes == {"approve", "review", "deny"}  # the cases differ, so a leak would show

    reused = RegorusPolicy(bundle)
    order = list(range(len(cases))) * 2
    random.Random(7).shuffle(order)
    for n, i in enumerate(order):
        if n % 5 == 0:  # an evaluation that fails in the engine, then a real one
            with pytest.raises(PolicyError):
                reused.evaluate({"request": 1, "evidence": "x", "waivers": None})
        assert canonical_json(reused.evaluate(cases[i])) == fresh[i], f"case {i} after {order[:n]}"
