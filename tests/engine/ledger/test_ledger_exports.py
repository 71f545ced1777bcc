"""Exports of a recorded decision: OSCAL assessment results, checked against the
compliance-trestle models, and JUnit XML (also from `slmgate promote --format junit`)."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import git
from trestle.oscal.assessment_results import AssessmentResults

from slmgate.evidence import format_time
from tests.conftest import NOW
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate, slmgate_process
from tests.junit_xsd import assert_valid_junit

__all__ = ["ledger_kit"]




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
