"""`slmgate ledger replay` and `what-if`: recorded decisions re-evaluated from what the ledger
kept; verification reused across decisions without changing a single result."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from slmgate.engine import CompiledPolicy, Ledger, evaluate_promotion, load_bundle, load_request
from slmgate.engine.ledger._diff import diff_decisions, diff_keyed
from slmgate.engine.ledger._verify_cache import CachedVerifier
from slmgate.engine.ledger._whatif import what_if
from slmgate.engine.promote import record_in_ledger, sign_decision_record
from slmgate.evidence import TrustPolicy, verify_envelope
from slmgate.evidence.errors import EvidenceInvalid
from tests.conftest import NOW, World
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate

__all__ = ["ledger_kit"]


def test_replay_reproduces_every_recorded_decision(ledger_kit: LedgerKit) -> None:
    for did in ledger_kit.ids:
        r = slmgate("ledger", "replay", did, "--ledger", ledger_kit.ledger)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith(f"SAME: {did}")
    r = slmgate("ledger", "replay", ledger_kit.ids[1][:12], "--ledger", ledger_kit.ledger, "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["same"] and doc["recorded_outcome"] == "deny" and doc["differences"] == []


def test_replay_shows_exactly_where_a_recorded_decision_differs(world: World, tmp_path: Path) -> None:
    """A record signed by the gate for an outcome the policy never gave (a bug, or a gate
    that was talked into it): replay names the outcome and the missing finding."""
    bundle = load_bundle(world.policies)
    req = load_request(world.request(tmp_path / "r", world.standard_evidence(stress_accuracy=0.70)))
    decision = evaluate_promotion(req, bundle, CompiledPolicy(bundle), now=NOW).decision
    assert decision.outcome == "deny"
    forged = replace(decision, outcome="approve", findings=[])
    ledger = Ledger(tmp_path / "ledger", signing_key=world.key("slmgate-gate"))
    record = sign_decision_record(forged, world.key("slmgate-gate"))
    record_in_ledger(ledger, forged, record, req, [e.raw for e in req.evidence], bundle)
    r = slmgate("ledger", "replay", forged.id, "--ledger", ledger.path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("DIFFERS")
    assert "outcome: recorded 'approve', replayed 'deny'" in r.stdout
    assert "findings[gate.stress.accuracy.max_drop@" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (("dec-00000000000000000000",), "no decision"),
    (("dec",), "no decision"),
])
def test_replay_of_an_unknown_decision_exits_2(ledger_kit: LedgerKit, args: tuple[str, ...],
                                                needle: str) -> None:
    r = slmgate("ledger", "replay", *args, "--ledger", ledger_kit.ledger)
    assert r.returncode == 2 and needle in r.stderr


def _tightened(world: World, dest: Path) -> Path:
    shutil.copytree(world.policies, dest, ignore=shutil.ignore_patterns(".git"))
    gates = dest / "gates.yaml"
    text = gates.read_text()
    assert "accuracy: {min: 0.90, max_drop: 0.02}" in text
    gates.write_text(text.replace("accuracy: {min: 0.90, max_drop: 0.02}",
                                  "accuracy: {min: 0.96, max_drop: 0.02}"))
    return dest


def test_what_if_reports_the_flips_a_tightened_gate_causes_and_by_which_rule(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    policies = _tightened(ledger_kit.world, tmp_path / "policies")
    r = slmgate("ledger", "what-if", "--ledger", ledger_kit.ledger, "--policies", policies,
                "--format", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["decisions"] == 3 and doc["flips"] == 2, doc["transitions"]
    assert doc["transitions"] == {"approve → deny": 1, "review → deny": 1}
    flipped = {i["decision_id"]: i for i in doc["items"] if i["flipped"]}
    assert set(flipped) == {ledger_kit.ids[0], ledger_kit.ids[2]}
    for item in flipped.values():
        assert [f["rule_id"] for f in item["added"]] == ["gate.regression.accuracy.min"]
    assert doc["verifications_reused"] > 0  # the kit's decisions share envelopes
    text = slmgate("ledger", "what-if", "--ledger", ledger_kit.ledger, "--policies", policies).stdout
    assert "FLIP #1" in text and "approve → deny" in text and "+ gate.regression.accuracy.min (deny)" in text


def test_what_if_under_the_recorded_bundle_flips_nothing(ledger_kit: LedgerKit) -> None:
    report = what_if(ledger_kit.ledger, ledger_kit.world.policies)
    assert [i.flipped or i.findings_changed for i in report.items] == [False, False, False]
    r = slmgate("ledger", "what-if", "--ledger", ledger_kit.ledger, "--policies", ledger_kit.world.policies)
    assert r.returncode == 0 and "flips: 0" in r.stdout


def test_what_if_in_worker_processes_agrees_with_one_process(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    policies = _tightened(ledger_kit.world, tmp_path / "policies")
    one = what_if(ledger_kit.ledger, policies)
    many = what_if(ledger_kit.ledger, policies, jobs=2, chunk_size=1)  # two workers really run
    assert many.jobs == 2
    assert [i.to_json() for i in many.items] == [i.to_json() for i in one.items]


def test_what_if_runs_one_worker_per_cpu_unless_told(ledger_kit: LedgerKit,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    policies = ledger_kit.world.policies
    assert what_if(ledger_kit.ledger, policies, chunk_size=1).jobs == 2
    assert what_if(ledger_kit.ledger, policies, chunk_size=1, jobs=1).jobs == 1
    assert what_if(ledger_kit.ledger, policies).jobs == 1  # one chunk: no worker is worth starting


# ------------------------------------------------------------------------------ verification reuse


@pytest.mark.parametrize("days", [-1.0, -0.01, 0, 0.5, 6.9, 7.0, 7.01, 13.99, 14.0, 14.5, 31, 400])
def test_cached_verification_equals_verify_envelope_at_every_time(world: World, days: float) -> None:
    evidence = world.standard_evidence()
    evidence["tampered"] = evidence["eval-result"].replace(b'"payload": "', b'"payload": "A', 1)
    evidence["other-subject"] = evidence["eval-result"]
    cached, trust = CachedVerifier(), world_trust(world)
    now = NOW + timedelta(days=days)
    for ref, raw in evidence.items():
        subject = "ab" * 32 if ref == "other-subject" else world.candidate_sha
        for verifier in (cached, cached):  # second call is served from the cache
            expected: object
            try:
                expected = verify_envelope(raw, trust, subject_sha256=subject, now=now, ref=ref)
            except EvidenceInvalid as exc:
                expected = (type(exc), exc.message)
            try:
                got: object = verifier(raw, trust, subject_sha256=subject, now=now, ref=ref)
            except EvidenceInvalid as exc:
                got = (type(exc), exc.message)
            assert got == expected, (ref, days)
    assert cached.stats.hits == len(evidence) and cached.stats.misses == len(evidence)


def world_trust(world: World) -> TrustPolicy:
    return load_bundle(world.policies).trust



def test_cached_verification_tells_envelopes_one_byte_apart(world: World) -> None:
    """The cache is keyed by the envelope's bytes: one byte of a signature changed is another
    envelope, refused, before and after the good one is cached."""
    raw = world.standard_evidence()["eval-result"]
    at = raw.index(b'"sig": "') + 20
    tampered = raw[:at] + (b"B" if raw[at:at + 1] != b"B" else b"C") + raw[at + 1:]
    cached, trust = CachedVerifier(), world_trust(world)
    for each in (tampered, raw, tampered, raw):
        if each == raw:
            assert cached(each, trust, subject_sha256=world.candidate_sha, now=NOW, ref="e").ref == "e"
        else:
            with pytest.raises(EvidenceInvalid):
                cached(each, trust, subject_sha256=world.candidate_sha, now=NOW, ref="e")
    assert (cached.stats.misses, cached.stats.hits) == (2, 2)
    # the ref is the caller's, whatever ref the cached result was verified under
    assert cached(raw, trust, subject_sha256=world.candidate_sha, now=NOW, ref="other").ref == "other"


def test_keyed_differences_are_diff_decisions_list_by_list() -> None:
    """What-if compares only findings and checks (``diff_keyed``): the same differences, with
    the same names, as the whole comparison lists for them."""
    old = {"outcome": "deny",
           "findings": [{"rule_id": "a", "evidence_ref": "x", "message": "m"}],
           "checks": [{"rule_id": "a", "passed": False}, {"rule_id": "b", "passed": True}],
           "evidence": [{"ref": "x", "verified": True}]}
    new = json.loads(json.dumps(old))
    for name in ("findings", "checks", "evidence"):
        assert diff_keyed(old, new, name) == []
    new["outcome"] = "approve"
    new["findings"] = []
    new["checks"][1]["passed"] = False
    new["evidence"].append({"ref": "y", "verified": False})
    whole = diff_decisions(old, new)
    for name in ("findings", "checks", "evidence"):
        keyed = diff_keyed(old, new, name)
        assert keyed and keyed == [d for d in whole if d.where.startswith(f"{name}[")]
