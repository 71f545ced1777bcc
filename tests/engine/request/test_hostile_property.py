"""Property: no mutation of a denied request's JSON turns the denial into an approval.

The requester controls the request; the evidence is signed and the policy reviewed. So whatever
hypothesis does to the request (replace any value with any JSON, delete any key, repeat or drop
evidence items), the outcome is a refusal of the input (``InputError``) or a decision that is
not ``approve``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmgate.engine import (
    CompiledPolicy,
    PolicyBundle,
    evaluate_promotion,
    load_bundle,
    load_request,
)
from slmgate.evidence.errors import InputError
from tests.conftest import NOW, World

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["support-triage", "weights_retrain", "prompt_tweak", "serving_config", "eu",
                       "us", "cpu", "cuda", "float32", "none", "ticket_routing", "tickets_scrubbed",
                       "sha256:" + "0" * 64, "weights", "eval-result.dsse.json", "..", "/"])
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                      max_size=3),
    max_leaves=6,
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*here, i))
    return found


def _mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        op = data.draw(st.sampled_from(["replace", "delete", "repeat"]), label="op")
        last = path[-1]
        if op == "replace":
            parent[last] = data.draw(JSON, label="value")
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[f"{last}_copy"] = copy.deepcopy(parent[last])
    return doc


@pytest.fixture(scope="module")
def denied(session_world: World, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[PolicyBundle, CompiledPolicy, list[Path]]:
    world = session_world
    root = tmp_path_factory.mktemp("property")
    regressed = world.request(root / "regressed", world.standard_evidence(stress_accuracy=0.70))
    tampered_ev = world.standard_evidence()
    env = json.loads(tampered_ev["eval-result"])
    env["signatures"][0]["sig"] = "A" * len(env["signatures"][0]["sig"])
    tampered_ev["eval-result"] = json.dumps(env).encode()
    tampered = world.request(root / "tampered", tampered_ev)
    bundle = load_bundle(world.policies)
    return bundle, CompiledPolicy(bundle), [regressed, tampered]


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_mutation_of_a_denied_request_approves(
        denied: tuple[PolicyBundle, CompiledPolicy, list[Path]], data: st.DataObject) -> None:
    bundle, policy, requests = denied
    original = data.draw(st.sampled_from(requests), label="request")
    base = json.loads(original.read_text())
    assert evaluate_promotion(load_request(original), bundle, policy, now=NOW).decision.outcome == "deny"
    mutated = original.with_name("mutated.json")
    mutated.write_text(json.dumps(_mutate(base, data)))
    try:
        request = load_request(mutated)
    except InputError:
        return  # refused as invalid input: nothing decided, nothing written
    decision = evaluate_promotion(request, bundle, policy, now=NOW).decision
    assert decision.outcome != "approve", decision.summary()
