"""Policy files are read exactly as a reviewer reads them: a key written twice, an alias that
expands out of sight, a number that is not a number — each refused naming the file and line."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmgate.engine import BundleInvalid, CompiledPolicy, load_bundle
from slmgate.engine.cli import main
from slmgate.engine.policy._bundle import SCHEMAS, _validator
from slmgate.engine.policy._policytest import run_policy_tests
from slmgate.engine.policy._yamldoc import load_yaml
from slmgate.evidence.errors import InputError
from tests.conftest import NOW, World


@pytest.fixture
def policies(world: World, tmp_path: Path) -> Path:
    dest = tmp_path / "policies"
    shutil.copytree(world.policies, dest, ignore=shutil.ignore_patterns(".git"))
    return dest


def _line_of(path: Path, text: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if text in t)


def _problems(policies: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(policies)
    return [str(p) for p in info.value.problems]


# ---------------------------------------------------------------- duplicate keys

def test_a_second_revoked_keyids_cannot_unrevoke_a_key(world: World, policies: Path, tmp_path: Path) -> None:
    """The attack: the reviewer sees the key revoked at the top; a second `revoked_keyids: []`
    further down is what a last-wins parser keeps, and the revoked key's evidence approves."""
    trust = policies / "trust.yaml"
    keyid = world.key("eval-harness").keyid
    text = trust.read_text().replace("revoked_keyids: []", f"revoked_keyids: [{keyid}]")
    trust.write_text(text + "revoked_keyids: []\n")
    first, second = _line_of(trust, f"revoked_keyids: [{keyid}]"), len(trust.read_text().splitlines())
    problems = _problems(policies)
    assert any("trust.yaml" in p and "revoked_keyids" in p and f"line {first}" in p
               and f"line {second}" in p for p in problems), problems
    # Through the gate: bad input (exit 2), never an approval under the revoked key.
    request = world.request(tmp_path / "req", world.standard_evidence())
    out = CliRunner().invoke(main, ["promote", str(request), "--policies", str(policies),
                                    "--at", "2026-11-20T12:01:00Z"])
    assert out.exit_code == 2, out.output
    assert "revoked_keyids" in out.output


@pytest.mark.parametrize("name,text,key", [
    ("gates.yaml", "eval:\n  stress:\n    accuracy: {min: 0.8}\n  stress:\n    accuracy: {min: 0.1}\n",
     "eval.stress"),
    ("tiers.yaml", None, "tiers.automated.requires_evidence"),
    ("waivers.yaml", "waivers: []\nwaivers: []\n", "waivers"),
])
def test_duplicate_keys_are_refused_naming_both_lines(policies: Path, name: str, text: str | None,
                                                       key: str) -> None:
    path = policies / name
    if text is None:  # a nested duplicate inside the real file
        original = path.read_text()
        anchor = "    requires_evidence: [weights-manifest, eval-result, serving-config]\n"
        path.write_text(original.replace(anchor, anchor + "    requires_evidence: [weights-manifest]\n", 1))
    else:
        path.write_text(text)
    problems = _problems(policies)
    assert any(name in p and key in p and "duplicate key" in p for p in problems), problems


def test_duplicate_keys_in_policy_test_yaml_are_refused(policies: Path) -> None:
    case = policies / "tests" / "promotion.yaml"
    case.write_text(case.read_text() + "cases: []\n")
    with pytest.raises(InputError) as info:
        bundle = load_bundle(policies, with_keys=False)
        run_policy_tests(bundle, CompiledPolicy(bundle))
    assert "duplicate key" in str(info.value) and "promotion.yaml" in str(info.value)


def test_duplicate_key_message_names_file_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a:\n  b: 1\n  c: 2\n  b: 3\n")
    with pytest.raises(InputError) as info:
        load_yaml(path)
    message = str(info.value)
    assert "x.yaml" in message and "a.b" in message and "line 2" in message and "line 4" in message


# ---------------------------------------------------------------- anchors and aliases

BILLION_LAUGHS = "\n".join(
    ['lol0: &lol0 ["lol"]'] + [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]"
                               for i in range(1, 10)]) + "\n"


def test_billion_laughs_is_refused_in_milliseconds(policies: Path) -> None:
    path = policies / "tiers.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    problems = _problems(policies)
    assert time.perf_counter() - started < 1.0
    assert any("tiers.yaml:2" in p and "alias" in p for p in problems), problems


def test_even_a_small_alias_is_refused_in_policy_files(policies: Path) -> None:
    path = policies / "gates.yaml"
    path.write_text("eval:\n  regression:\n    accuracy: &floor {min: 0.9}\n"
                    "  stress:\n    accuracy: *floor\n")
    problems = _problems(policies)
    assert any("gates.yaml:5" in p and "alias" in p for p in problems), problems


def test_merge_keys_are_refused(policies: Path) -> None:
    path = policies / "gates.yaml"
    path.write_text("eval:\n  regression:\n    accuracy:\n      <<: {min: 0.5}\n      min: 0.9\n")
    problems = _problems(policies)
    assert any("gates.yaml:4" in p and "merge" in p for p in problems), problems


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400", "1e300", "99999999999999999999"])
def test_non_finite_or_out_of_range_gate_numbers_are_refused(policies: Path, value: str) -> None:
    path = policies / "gates.yaml"
    path.write_text(path.read_text().replace("accuracy: {min: 0.80, max_drop: 0.03}",
                                             f"accuracy: {{min: {value}, max_drop: 0.03}}"))
    line = _line_of(path, f"min: {value}")
    problems = _problems(policies)
    assert any(f"gates.yaml:{line}" in p and "eval.stress.accuracy.min" in p for p in problems), problems


def test_nan_elsewhere_in_policy_is_refused_too(policies: Path) -> None:
    path = policies / "trust.yaml"
    path.write_text(path.read_text().replace("eval-result: 14", "eval-result: .inf"))
    problems = _problems(policies)
    assert any("trust.yaml" in p and "max_age_days.eval-result" in p for p in problems), problems


def test_plain_policy_still_loads(world: World) -> None:
    assert load_bundle(world.policies).digest.startswith("sha256:")
    assert NOW.year == 2026


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_bundle_schema_is_a_valid_cerberus_schema(name: str) -> None:
    """The bundle's validators skip cerberus's check of their own schemas at run time
    (``_bundle._OwnSchema``); this is where that check runs, and where a malformed one fails."""
    import cerberus

    cerberus.Validator(SCHEMAS[name])  # raises SchemaError on a malformed schema
    assert _validator(name).schema.schema == cerberus.Validator(SCHEMAS[name]).schema.schema


def test_a_malformed_bundle_schema_fails_the_check() -> None:
    import cerberus

    with pytest.raises(cerberus.SchemaError):
        cerberus.Validator({"gates": {"type": "dict", "nonsense_rule": 1}})
