"""Facts: time arithmetic and scoping happen in Python before the policy sees anything."""

from __future__ import annotations

import copy
import shutil
from datetime import timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request
from slmgate.engine.cli import main
from slmgate.engine.policy._facts import active_waivers
from slmgate.evidence import format_time
from tests.conftest import NOW, World

WAIVER = {"id": "W-7", "rule_id": "gate.stress.accuracy.min", "scope": {"model": "support-triage"},
          "owner": "ml-lead", "ticket": "GRC-7", "reason": "known typo regression, fix in 1.3",
          "expires": "2026-11-20"}


def test_waiver_scope_and_expiry_day_inclusive() -> None:
    other = {**WAIVER, "id": "W-8", "scope": {"model": "invoice-extractor"}}
    active, expired = active_waivers([WAIVER, other], "support-triage", NOW)
    assert [w["id"] for w in active] == ["W-7"] and expired == []
    active, expired = active_waivers([WAIVER], "support-triage", NOW + timedelta(days=1))
    assert active == [] and [w["id"] for w in expired] == ["W-7"]


def _with_waiver(world: World, tmp_path: Path, waiver: dict) -> Path:  # type: ignore[type-arg]
    dest = tmp_path / "policies"
    shutil.copytree(world.policies, dest)
    (dest / "waivers.yaml").write_text(yaml.safe_dump({"waivers": [waiver]}))
    return dest


def test_a_waiver_suppresses_exactly_its_rule(world: World, tmp_path: Path) -> None:
    policies = _with_waiver(world, tmp_path, WAIVER)
    request = load_request(world.request(tmp_path / "r", world.standard_evidence(stress_accuracy=0.79)))
    bundle = load_bundle(policies)
    decision = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW).decision
    severity = {f["rule_id"]: f["severity"] for f in decision.findings}
    assert severity == {"gate.stress.accuracy.min": "info", "gate.stress.accuracy.max_drop": "deny"}
    assert decision.outcome == "deny"
    assert [w["id"] for w in decision.waivers_applied] == ["W-7"]

    # deep copies: yaml.safe_dump would write shared dicts as an anchor and alias, which policy
    # files refuse
    both = {**copy.deepcopy(WAIVER), "id": "W-9", "rule_id": "gate.stress.accuracy.max_drop"}
    (policies / "waivers.yaml").write_text(yaml.safe_dump({"waivers": [WAIVER, both]}))
    bundle = load_bundle(policies)
    decision = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW).decision
    assert decision.outcome == "approve", decision.findings
    assert sorted(w["id"] for w in decision.waivers_applied) == ["W-7", "W-9"]


def test_an_expired_waiver_is_ignored_and_reported(world: World, tmp_path: Path) -> None:
    policies = _with_waiver(world, tmp_path, {**WAIVER, "expires": "2026-11-19"})
    request = load_request(world.request(tmp_path / "r", world.standard_evidence(stress_accuracy=0.79)))
    bundle = load_bundle(policies)
    decision = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW).decision
    assert decision.outcome == "deny"
    assert [w["id"] for w in decision.waivers_expired] == ["W-7"] and decision.waivers_applied == []


def test_explain_shows_facts_and_policy_data(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "r", world.standard_evidence(stress_accuracy=0.5))
    result = CliRunner().invoke(main, ["promote", str(req), "--policies", str(world.policies),
                                       "--at", format_time(NOW), "--explain"])
    assert result.exit_code == 1, result.output
    assert '"limit": 0.8' in result.output and '"candidate": 0.5' in result.output
    assert "passed gate.regression.accuracy.min" in result.output


def test_an_eval_without_a_baseline_never_approves(world: World, tmp_path: Path) -> None:
    from tests.conftest import eval_predicate

    predicate = eval_predicate(world.baseline_sha)
    predicate["baseline"] = None
    for layer in predicate["layers"].values():
        for metric in layer["metrics"].values():
            metric["baseline"] = None
    evidence = world.standard_evidence()
    evidence["eval-result"] = world.envelope("eval-harness", "eval-result", predicate)
    request = load_request(world.request(tmp_path / "r", evidence))
    bundle = load_bundle(world.policies)
    result = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW)
    assert result.facts["evidence"]["eval"]["baseline_matches"] is False
    assert result.decision.outcome == "deny"
    denied = {f["rule_id"] for f in result.decision.findings if f["severity"] == "deny"}
    assert {"evidence.eval.baseline", "gate.stress.accuracy.max_drop"} <= denied
