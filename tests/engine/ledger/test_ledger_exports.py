"""Exports of a recorded decision: OSCAL assessment results, checked against the
compliance-trestle models — the controls each finding evidences (the packet's mapping), the
reviewed controls, the parties, resources that resolve in the ledger with their digest — and
JUnit XML (also from `slmgate promote --format junit`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import git
import pytest
from trestle.oscal.assessment_results import AssessmentResults

from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision
from slmgate.engine.ledger._oscal import assessment_results
from slmgate.engine.ledger._store import LedgerError
from slmgate.engine.packet._controls import control_rows
from slmgate.engine.policy._controls import CONTROLS, oscal_token
from slmgate.engine.policy._decision import Decision
from slmgate.evidence import format_time
from tests.conftest import NOW
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate, slmgate_process
from tests.junit_xsd import assert_valid_junit

__all__ = ["ledger_kit"]


def exported(kit: LedgerKit, decision_id: str, out: Path) -> dict[str, Any]:
    """`ledger export --oscal` of one decision, read back with trestle's models first."""
    r = slmgate("ledger", "export", decision_id, "--ledger", kit.ledger, "--oscal", out)
    assert r.returncode == 0, r.stderr
    assert AssessmentResults.oscal_read(out) is not None
    return dict(json.loads(out.read_text())["assessment-results"])


def finding_controls(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Rule id -> the control ids its finding names."""
    [result] = doc["results"]
    return {f["target"]["target-id"]: {p["value"] for p in f.get("props", []) if p["name"] == "control-id"}
            for f in result["findings"]}


def recorded(kit: LedgerKit, decision_id: str) -> tuple[RecordedDecision, dict[str, bytes]]:
    with LedgerHistory(kit.ledger) as history:
        rec = history.load(history.resolve(decision_id))
        return rec, history.bundle_files(rec.manifest.bundle_digest)

def test_oscal_export_is_valid_assessment_results_with_a_finding_per_rule(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    did = ledger_kit.ids[1]  # denied for the stress regression
    out = tmp_path / "ar.json"
    r = slmgate("ledger", "export", did, "--ledger", ledger_kit.ledger, "--oscal", out)
    assert r.returncode == 0, r.stderr
    model = AssessmentResults.oscal_read(out)
    assert model is not None
    doc = json.loads(out.read_text())["assessment-results"]
    [result] = doc["results"]
    findings = {f["target"]["target-id"]: f for f in result["findings"]}
    assert findings["gate.stress.accuracy.max_drop"]["target"]["status"]["state"] == "not-satisfied"
    assert findings["gate.regression.accuracy.min"]["target"]["status"]["state"] == "satisfied"
    assert len(findings) == len(result["findings"])  # one per rule
    # every observation's evidence resolves to a back-matter resource naming a ledger file by sha256
    resources = {res["uuid"]: res for res in doc["back-matter"]["resources"]}
    observations = {o["uuid"]: o for o in result["observations"]}
    tree = git.Repo(ledger_kit.ledger).head.commit.tree
    for finding in result["findings"]:
        for rel in finding["related-observations"]:
            assert rel["observation-uuid"] in observations
    evidence_obs = [o for o in result["observations"] if o["title"].startswith("evidence ")]
    assert len(evidence_obs) == 5  # the standard evidence: manifest, eval, serving, training-run, data card
    for obs in evidence_obs:
        [link] = resources[obs["relevant-evidence"][0]["href"].removeprefix("#")]["rlinks"]
        data = tree[link["href"]].data_stream.read()
        assert hashlib.sha256(data).hexdigest() == link["hashes"][0]["value"]
    stress = findings["gate.stress.accuracy.max_drop"]["related-observations"]
    assert [observations[s["observation-uuid"]]["title"] for s in stress] == ["evidence eval-result"]
    again = tmp_path / "again.json"
    slmgate("ledger", "export", did, "--ledger", ledger_kit.ledger, "--oscal", again)
    assert again.read_bytes() == out.read_bytes()  # deterministic


def test_junit_export_has_a_testcase_per_check_and_failures_for_failed_ones(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    out = tmp_path / "j.xml"
    r = slmgate("ledger", "export", ledger_kit.ids[2], "--ledger", ledger_kit.ledger, "--junit", out)
    assert r.returncode == 0, r.stderr
    assert_valid_junit(out.read_text())
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failed = {n for n, c in cases.items() if c.find("failure") is not None}
    waiting = {n for n, c in cases.items() if c.find("skipped") is not None}
    assert failed == set() and waiting == {"approval.release-manager"}  # REVIEW waits: skipped
    assert "human review required" in cases["approval.release-manager"].find("skipped").get("message")  # type: ignore[union-attr]
    assert int(suite.get("tests", "0")) == len(cases) and int(suite.get("failures", "0")) == 0
    assert int(suite.get("skipped", "0")) == 1
    assert {"weights-manifest", "eval-result", "serving-config"} <= set(cases)


def test_export_needs_a_target_and_a_known_decision(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    r = slmgate("ledger", "export", ledger_kit.ids[0], "--ledger", ledger_kit.ledger)
    assert r.returncode == 2 and "nothing to export" in r.stderr
    r = slmgate("ledger", "export", "dec-ffffffffffffffff0000", "--ledger", ledger_kit.ledger,
                "--junit", tmp_path / "x.xml")
    assert r.returncode == 2 and not (tmp_path / "x.xml").exists()


def test_promote_format_junit_prints_junit_and_keeps_the_gate_exit_code(
        ledger_kit: LedgerKit) -> None:
    world = ledger_kit.world
    at = format_time(NOW + timedelta(minutes=1))
    r = slmgate_process("promote", ledger_kit.requests[1], "--policies", world.policies, "--at", at,
                        "--format", "junit")
    assert r.returncode == 1, r.stderr
    assert_valid_junit(r.stdout)
    root = ET.fromstring(r.stdout)
    failures = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert "gate.stress.accuracy.max_drop" in failures


def test_oscal_findings_name_the_controls_their_rule_evidences(ledger_kit: LedgerKit,
                                                               tmp_path: Path) -> None:
    denied = finding_controls(exported(ledger_kit, ledger_kit.ids[1], tmp_path / "deny.json"))
    # the stress regression that denied it: change tested (CC8.1), verification and validation
    # (A.6.2.4), the metrics' appropriateness (Annex IV(4)) — not deployment or operation
    assert denied["gate.stress.accuracy.max_drop"] == {"cc8.1", "a.6.2.4", "annex-iv.4"}
    assert denied["gate.regression.accuracy.min"] == {"cc8.1", "a.6.2.4", "annex-iv.4"}
    assert denied["gate.policy.false_escalation_rate.max"] == {"cc8.1", "a.6.2.4", "annex-iv.3",
                                                               "annex-iv.4"}
    assert denied["request.change_classes"] == {"cc8.1", "annex-iv.6"}
    assert denied["purpose.serving"] == {"a.6.2.5"}
    review = finding_controls(exported(ledger_kit, ledger_kit.ids[2], tmp_path / "review.json"))
    assert review["approval.release-manager"] == {"cc8.1", "a.6.2.5"}
    assert review["rollback.plan"] == {"cc8.1", "a.6.2.6"}
    assert review["evidence.verified"] == set()  # evidences no control of the mapping


def test_oscal_and_packet_name_the_same_controls_for_the_same_finding(ledger_kit: LedgerKit,
                                                                      tmp_path: Path) -> None:
    labels = {c.control_id: c.control for c in CONTROLS}
    for i, did in enumerate(ledger_kit.ids):
        for rule, ids in finding_controls(exported(ledger_kit, did, tmp_path / f"{i}.json")).items():
            # the packet's table with this rule failing alone: the controls it shows a gap for
            decision = Decision(
                id="d", outcome="approve", tier="t", findings=[], approvals_needed=[],
                checks=[{"rule_id": rule, "passed": False, "message": ""}], waivers_applied=[],
                waivers_expired=[], request={}, evidence=[], bundle_digest="", policy_revision=None,
                evaluated_at="")
            kinds = ["eval-result", "serving-config", "weights-manifest"]
            rows = control_rows(decision, {"evidence": [{"kind": k, "verified": True} for k in kinds]})
            in_packet = {r["control"] for r in rows if f"failed: {rule}" in r["note"]}
            assert in_packet == {labels[c] for c in ids}, rule


def test_oscal_lists_every_reviewed_control_by_framework(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    [result] = exported(ledger_kit, ledger_kit.ids[0], tmp_path / "ar.json")["results"]
    selections = result["reviewed-controls"]["control-selections"]
    assert all("include-all" not in s for s in selections)
    by_framework = {s["props"][0]["value"]: [c["control-id"] for c in s["include-controls"]]
                    for s in selections}
    assert by_framework == {
        "SOC 2": ["cc8.1"], "ISO/IEC 42001": ["a.6.2.4", "a.6.2.5", "a.6.2.6"],
        "EU AI Act": ["annex-iv.2", "annex-iv.3", "annex-iv.4", "annex-iv.6"]}
    assert {oscal_token(c.control) for c in CONTROLS} == {i for ids in by_framework.values() for i in ids}
    named = {p["value"] for f in result["findings"] for p in f.get("props", []) if p["name"] == "control-id"}
    assert named <= {i for ids in by_framework.values() for i in ids}


def test_oscal_names_the_gate_the_requester_and_the_approvers(ledger_kit: LedgerKit,
                                                             tmp_path: Path) -> None:
    doc = exported(ledger_kit, ledger_kit.ids[2], tmp_path / "review.json")
    meta, [result] = doc["metadata"], doc["results"]
    assert {r["id"] for r in meta["roles"]} == {"assessor", "requester", "approver"}
    parties = {p["uuid"]: p for p in meta["parties"]}
    roles = {r["role-id"]: [parties[u]["name"] for u in r["party-uuids"]]
             for r in meta["responsible-parties"]}
    # the ml-lead approval signed for this request; the release-manager's is still missing
    assert roles == {"requester": ["tests@example.com"], "approver": ["ml-lead"]}
    [approver] = [p for p in parties.values() if p["name"] == "ml-lead"]
    assert approver["email-addresses"] == ["ml-lead@example.com"]  # from the bundle's trust.yaml
    [gate] = result["local-definitions"]["assessment-assets"]["components"]
    assert gate["title"] == "slmgate" and gate["type"] == "software"
    for obs in result["observations"]:
        actors = [a for o in obs["origins"] for a in o["actors"]]
        assert {"type": "tool", "actor-uuid": gate["uuid"], "role-id": "assessor"} in actors
        by_party = [a["actor-uuid"] for a in actors if a["type"] == "party"]
        assert by_party == ([approver["uuid"]] if obs["title"] == "evidence approval-ml-lead" else [])
    # the approved decision had no approval: the requester alone is a party
    doc = exported(ledger_kit, ledger_kit.ids[0], tmp_path / "approve.json")
    assert [r["role-id"] for r in doc["metadata"]["responsible-parties"]] == ["requester"]


def test_oscal_a_signed_rejection_names_no_approver(ledger_kit: LedgerKit) -> None:
    rec, bundle = recorded(ledger_kit, ledger_kit.ids[2])
    approval = json.loads(rec.evidence["approval-ml-lead"])
    rejection = ledger_kit.world.envelope("ml-lead", "approval", {
        "request_id": rec.decision["request"]["id"], "request_digest": "sha256:" + "0" * 64,
        "decision": "reject", "approved_at": format_time(NOW)})
    assert json.loads(rejection)["signatures"][0]["keyid"] == approval["signatures"][0]["keyid"]
    changed = dataclasses.replace(rec, evidence={**rec.evidence, "approval-ml-lead": rejection})
    meta = assessment_results(changed, bundle)["assessment-results"]["metadata"]
    assert [r["role-id"] for r in meta["responsible-parties"]] == ["requester"]
    assert [p["name"] for p in meta["parties"]] == ["tests@example.com"]


def test_oscal_every_resource_link_resolves_in_the_ledger_with_its_digest(ledger_kit: LedgerKit,
                                                                          tmp_path: Path) -> None:
    doc = exported(ledger_kit, ledger_kit.ids[2], tmp_path / "review.json")
    tree = git.Repo(ledger_kit.ledger).head.commit.tree
    resources = doc["back-matter"]["resources"]
    titles = [r["title"] for r in resources]
    digest = {p["name"]: p["value"] for p in doc["results"][0]["props"]}["bundle-digest"]
    assert titles[:4] == [f"policy bundle {digest}", "ledger chain entry 3", "promotion request",
                          "signed decision record"]
    assert sum(t.startswith("evidence envelope ") for t in titles) == 7
    links = [link for res in resources for link in res["rlinks"]]
    assert len(links) > len(resources)  # the bundle: one link per file
    for link in links:
        [digest] = link["hashes"]
        assert digest["algorithm"] == "SHA-256"
        assert hashlib.sha256(tree[link["href"]].data_stream.read()).hexdigest() == digest["value"]
    bundle = {link["href"] for link in resources[0]["rlinks"]}
    stored = {b.path for b in tree.traverse() if b.type == "blob" and b.path.startswith("bundles/")}
    assert bundle == stored  # every file of the bundle, nothing else
    # every internal reference names a resource or an observation of the document
    uuids = {r["uuid"] for r in resources}
    assert doc["import-ap"]["href"].removeprefix("#") in uuids
    for obs in doc["results"][0]["observations"]:
        for ev in obs.get("relevant-evidence", []):
            assert ev["href"].removeprefix("#") in uuids


def test_oscal_refuses_a_bundle_that_does_not_match_its_digest(ledger_kit: LedgerKit) -> None:
    rec, bundle = recorded(ledger_kit, ledger_kit.ids[0])
    with pytest.raises(LedgerError, match="does not match the bundle digest"):
        assessment_results(rec, {**bundle, "trust.yaml": bundle["trust.yaml"] + b"\n# changed\n"})
