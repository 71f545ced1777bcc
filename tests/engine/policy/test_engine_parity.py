"""The parity table: every decision case of the shipped policy tests, on every engine slmgate
ships — regorus (default), regopy, and an OPA server (the loopback OPA v1 API) — gives the same
decision object, byte for byte after canonical JSON; and its messages are formatted as OPA's
sprintf formats them, whatever engine evaluated the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from slmgate.engine import load_bundle
from slmgate.engine.policy._decision import checked_policy_output
from slmgate.engine.policy._engines import EMBEDDED_ENGINES, embedded_engine
from slmgate.engine.policy._messages import render_message
from slmgate.engine.policy._opa import OpaServerPolicy
from slmgate.engine.policy._policytest import _apply
from slmgate.evidence import canonical_json
from tests.conftest import World
from tests.opa_loopback import opa_loopback


def _cases(policies: Path) -> list[tuple[str, dict[str, Any]]]:
    doc = yaml.safe_load((policies / "tests" / "promotion.yaml").read_text())
    return [(c["name"], _apply(doc["base"], c, "promotion.yaml")) for c in doc["cases"]]


@pytest.fixture(scope="module")
def table(session_world: World) -> dict[str, dict[str, bytes]]:
    """engine -> case name -> the canonical bytes of its decision."""
    bundle = load_bundle(session_world.policies)
    cases = _cases(session_world.policies)
    out: dict[str, dict[str, bytes]] = {}
    for name in EMBEDDED_ENGINES:
        engine = embedded_engine(bundle, name)
        out[name] = {case: canonical_json(checked_policy_output(engine.evaluate(facts)))
                     for case, facts in cases}
    with opa_loopback() as (url, _state):
        server = OpaServerPolicy(bundle, url)
        out["opa"] = {case: canonical_json(checked_policy_output(server.evaluate(facts)))
                      for case, facts in cases}
    return out


def test_every_engine_gives_the_same_bytes_for_every_case(table: dict[str, dict[str, bytes]]) -> None:
    reference = table["regorus"]
    assert len(reference) >= 40
    for engine, decisions in table.items():
        differing = [case for case, raw in decisions.items() if raw != reference[case]]
        assert differing == [], f"{engine} differs from regorus on {differing}"


def test_messages_read_as_opa_formats_them(table: dict[str, dict[str, bytes]]) -> None:
    text = b"".join(table["regopy"].values()).decode()
    assert "0.9975000000000001" not in text and "0.9399999999999999" not in text
    assert "%q" not in text and "%!" not in text
    assert "moved 0.92 -> 0.94 (drop -0.02, at most 0.02)" in text
    assert 'serves purpose \\"marketing_insights\\", which purposes.yaml does not declare' in text


@pytest.mark.parametrize("message, text", [
    ({"format": "%s %v, minimum %v", "args": ["stress accuracy", 0.9975, 0.9]},
     "stress accuracy 0.9975, minimum 0.9"),
    ({"format": "%d item(s): %v", "args": [2, ["a", "b"]]}, '2 item(s): ["a", "b"]'),
    ({"format": "purpose %q; %v", "args": ["x", {"b": 1, "a": None}]}, 'purpose "x"; {"a": null, "b": 1}'),
    ({"format": "%v %v %v", "args": [3.0, 1e-07, True]}, "3 1e-07 true"),
    ({"format": "waived: %s", "args": [{"format": "drop %v", "args": [0.1]}]}, "waived: drop 0.1"),
    ({"format": "100%% of %v", "args": [[{"format": "x %d", "args": [1]}]]}, '100% of ["x 1"]'),
    ({"format": "%v and %v", "args": [1]}, "1 and %!v(MISSING)"),
    ({"format": "%v", "args": [1, 2]}, "1%!(EXTRA 2)"),
    ("a plain string", "a plain string"),
    ({"format": "%v%%%v", "args": [1, 2]}, "1%2"),
    ({"format": "%%%v", "args": []}, "%%!v(MISSING)"),
    ({"format": "%v %%", "args": [True, 2]}, "true %%!(EXTRA 2)"),
    ({"format": "%q %d", "args": ['a"b', 2.0]}, '"a\\"b" 2'),
    ({"format": "%s|%v", "args": [1e21, 10**21]}, "1e+21|1000000000000000000000"),
])
def test_messages_are_rendered_as_opa_sprintf_would(message: Any, text: str) -> None:
    assert render_message(message) == text


def test_formats_parsed_once_are_told_apart_by_their_whole_text() -> None:
    """Each format is cut into its verbs once and the cut reused (``_template``): formats that
    share a prefix, or differ in one character, still render as themselves, in any order."""
    cases = [({"format": "%s a", "args": ["x"]}, "x a"),
             ({"format": "%s a %v", "args": ["x", 1.5]}, "x a 1.5"),
             ({"format": "%s a %%v", "args": ["x"]}, "x a %v"),
             ({"format": "%s b", "args": ["x"]}, "x b"),
             ({"format": "%d a", "args": [3]}, "3 a")]
    for message, text in [*cases, *reversed(cases), *cases]:
        assert render_message(message) == text
