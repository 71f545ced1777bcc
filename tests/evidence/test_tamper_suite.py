"""The tamper suite: every named bad envelope in tests/assets/tamper/ is refused at its step, and
a promotion carrying it is never approved — while the same promotion with the good evidence is.

The assets are built by tests/assets/build_tamper_cases.py from committed test-only keys; the
first test reruns the script and requires byte-identical output.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from slmgate.engine import CompiledPolicy, PolicyBundle, evaluate_promotion, load_bundle, load_request
from slmgate.engine.cli import main as slmgate_cli
from slmgate.evidence import (
    Envelope,
    PublicKey,
    SigningKey,
    Statement,
    TrustPolicy,
    parse_time,
    sign_envelope,
    verify_envelope,
)
from slmgate.evidence import errors as evidence_errors
from slmgate.evidence.errors import EvidenceInvalid
from tests.conftest import World

ASSETS = Path(__file__).resolve().parents[1] / "assets"
TAMPER = ASSETS / "tamper"
INDEX: dict[str, Any] = json.loads((TAMPER / "cases.json").read_text())
CASES = {c["name"]: c for c in INDEX["cases"]}
NOW = parse_time(INDEX["now"], what="now")
SUBJECT = INDEX["subject"]
REFUSED = sorted(n for n, c in CASES.items() if c["step"])


def asset_trust() -> TrustPolicy:
    doc = yaml.safe_load((ASSETS / "trust.yaml").read_text())
    return TrustPolicy.from_document(doc, base_dir=ASSETS, source=str(ASSETS / "trust.yaml"))


def test_the_script_rebuilds_the_committed_assets_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ASSETS / "build_tamper_cases.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(TAMPER) for p in TAMPER.rglob("*") if p.is_file())
    assert built == committed
    stale = [str(p) for p in built if (tmp_path / p).read_bytes() != (TAMPER / p).read_bytes()]
    assert not stale, f"assets out of date; run python tests/assets/build_tamper_cases.py: {stale}"


def test_the_index_covers_the_issue_and_names_real_exceptions() -> None:
    required = {
        "payload-altered", "signature-altered", "unknown-key", "revoked-key",
        "key-outside-validity-window", "key-not-allowed-for-type", "threshold-one-key-repeated",
        "subject-of-another-model", "older-candidate-replayed", "stale", "future-dated",
        "payload-type-mismatch", "not-a-statement", "invalid-base64",
        "approval-for-another-request", "candidates-mixed",
    }
    assert required <= CASES.keys()
    for case in CASES.values():
        assert (TAMPER / case["file"]).is_file()
        assert case["ref"] in INDEX["good"]
        if case["exception"]:
            cls = getattr(evidence_errors, case["exception"])
            assert issubclass(cls, EvidenceInvalid) and cls.step == case["step"]


def test_asset_trust_policy_is_what_the_cases_assume() -> None:
    trust = asset_trust()
    by_name = {i.name: i for i in trust.identities}
    assert trust.revoked_keyids == {by_name["revoked-harness"].key.keyid}
    assert by_name["ml-lead"].principal == by_name["ml-lead-token"].principal != "ml-lead"
    assert by_name["runtime"].key.algorithm == "ecdsa-p256"
    assert trust.thresholds["approval"] == 2
    stranger = PublicKey.load(ASSETS / "keys" / "stranger.pub")
    assert stranger.keyid not in {i.key.keyid for i in trust.identities}


@pytest.mark.parametrize("ref", sorted(INDEX["good"]))
def test_good_evidence_verifies(ref: str) -> None:
    raw = (TAMPER / INDEX["good"][ref]).read_bytes()
    ev = verify_envelope(raw, asset_trust(), subject_sha256=SUBJECT, now=NOW, ref=ref)
    assert ev.kind == ref


@pytest.mark.parametrize("name", REFUSED)
def test_each_case_is_refused_at_its_step(name: str) -> None:
    case = CASES[name]
    raw = (TAMPER / case["file"]).read_bytes()
    with pytest.raises(EvidenceInvalid) as caught:
        verify_envelope(raw, asset_trust(), subject_sha256=SUBJECT, now=NOW, ref=name)
    assert type(caught.value).__name__ == case["exception"]
    assert caught.value.step == case["step"]


@pytest.mark.parametrize("name", sorted(set(CASES) - set(REFUSED)))
def test_request_level_cases_verify_as_envelopes(name: str) -> None:
    """These are refused by the promotion (policy binding, manifest check), not by the envelope."""
    raw = (TAMPER / CASES[name]["file"]).read_bytes()
    verify_envelope(raw, asset_trust(), subject_sha256=SUBJECT, now=NOW, ref=name)


# ------------------------------------------------------------------------------ promotions


@pytest.fixture(scope="module")
def gate(session_world: World) -> tuple[PolicyBundle, CompiledPolicy]:
    """The default policy bundle, judging evidence with the assets' trust policy."""
    bundle = replace(load_bundle(session_world.policies), trust_policy=asset_trust())
    return bundle, CompiledPolicy(bundle)


def promotion_with(folder: Path, case: str | None) -> Path:
    """The assets' promotion request, with the case's envelope in place of its ref's."""
    doc = json.loads((TAMPER / INDEX["request"]).read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for item in doc["evidence"]:
        source = TAMPER / item["path"]
        if case and item["ref"] == CASES[case]["ref"]:
            source = TAMPER / CASES[case]["file"]
        item["path"] = f"{item['ref']}.dsse.json"
        shutil.copyfile(source, folder / item["path"])
    path = folder / "request.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_the_good_promotion_is_approved(gate: tuple[PolicyBundle, CompiledPolicy], tmp_path: Path) -> None:
    """The control: without it, 'never approved' below could pass for an unrelated reason."""
    bundle, policy = gate
    result = evaluate_promotion(load_request(promotion_with(tmp_path, None)), bundle, policy, now=NOW)
    assert result.decision.outcome == "approve", result.decision.summary()
    assert result.decision.exit_code == 0
    assert all(r.verified for r in result.decision.evidence)


@pytest.mark.parametrize("name", REFUSED)
def test_a_promotion_carrying_a_refused_envelope_is_denied_exit_4(
    name: str, gate: tuple[PolicyBundle, CompiledPolicy], tmp_path: Path
) -> None:
    bundle, policy = gate
    case = CASES[name]
    result = evaluate_promotion(load_request(promotion_with(tmp_path, name)), bundle, policy, now=NOW)
    decision = result.decision
    assert decision.outcome == "deny" and decision.exit_code == 4
    refused = [(r.ref, r.failed_step) for r in decision.evidence if not r.verified]
    assert refused == [(case["ref"], case["step"])]


def test_an_approval_for_another_request_does_not_count(
    gate: tuple[PolicyBundle, CompiledPolicy], tmp_path: Path
) -> None:
    bundle, policy = gate
    req = load_request(promotion_with(tmp_path, "approval-for-another-request"))
    decision = evaluate_promotion(req, bundle, policy, now=NOW).decision
    assert all(r.verified for r in decision.evidence)  # a genuine approval...
    assert decision.outcome == "review" and decision.exit_code == 3  # ...of something else
    assert sorted(a["role"] for a in decision.approvals_needed) == ["ml-lead", "release-manager"]


def test_a_manifest_that_disagrees_with_its_subject_is_refused_by_the_gate(
    gate: tuple[PolicyBundle, CompiledPolicy], tmp_path: Path
) -> None:
    bundle, policy = gate
    req = load_request(promotion_with(tmp_path, "manifest-disagrees-with-subject"))
    decision = evaluate_promotion(req, bundle, policy, now=NOW).decision
    assert decision.outcome == "deny" and decision.exit_code == 4
    assert [(r.ref, r.failed_step) for r in decision.evidence if not r.verified] == [
        ("weights-manifest", "manifest")]


def test_both_candidates_evidence_together_is_never_approved(
    gate: tuple[PolicyBundle, CompiledPolicy], tmp_path: Path
) -> None:
    """The sibling candidate's serving config added beside this candidate's own."""
    bundle, policy = gate
    path = promotion_with(tmp_path, None)
    doc = json.loads(path.read_text())
    shutil.copyfile(TAMPER / CASES["candidates-mixed"]["file"], tmp_path / "sibling.dsse.json")
    doc["evidence"].append({"ref": "serving-config-rc2", "path": "sibling.dsse.json"})
    path.write_text(json.dumps(doc))
    decision = evaluate_promotion(load_request(path), bundle, policy, now=NOW).decision
    assert decision.outcome == "deny" and decision.exit_code == 4
    assert [(r.ref, r.failed_step) for r in decision.evidence if not r.verified] == [
        ("serving-config-rc2", "subject")]


# ------------------------------------------------------------------------------ the real CLI


def _trust_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "trust"
    shutil.copytree(ASSETS / "keys", folder / "keys", ignore=shutil.ignore_patterns("*.key"))
    shutil.copyfile(ASSETS / "trust.yaml", folder / "trust.yaml")
    return folder / "trust.yaml"


def test_cli_verify_names_the_step_of_every_case(tmp_path: Path) -> None:
    trust = _trust_folder(tmp_path)
    runner = CliRunner()
    for name, case in CASES.items():
        r = runner.invoke(slmgate_cli, ["evidence", "verify", str(TAMPER / case["file"]),
                                        "--trust", str(trust), "--subject", f"sha256:{SUBJECT}",
                                        "--at", INDEX["now"], "--format", "json"])
        if case["step"] is None:
            assert r.exit_code == 0, (name, r.output)
            continue
        assert r.exit_code == 4, (name, r.output)
        assert json.loads(r.stdout)["failed_step"] == case["step"], name


@pytest.mark.parametrize("name, exit_code", [
    (None, 0), ("payload-altered", 4), ("threshold-one-person-two-keys", 4),
    ("approval-for-another-request", 3),
])
def test_cli_promote_exit_codes(session_world: World, tmp_path: Path, name: str | None,
                                exit_code: int) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(session_world.policies, policies, ignore=shutil.ignore_patterns(".git"))
    shutil.copytree(ASSETS / "keys", policies / "keys", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.key"))
    shutil.copyfile(ASSETS / "trust.yaml", policies / "trust.yaml")
    request = promotion_with(tmp_path / "request", name)
    r = subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "promote", str(request),
                        "--policies", str(policies), "--at", INDEX["now"]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == exit_code, r.stdout + r.stderr


def test_one_persons_two_keys_never_count_as_two_approvers(
    gate: tuple[PolicyBundle, CompiledPolicy], tmp_path: Path
) -> None:
    """Separate approval envelopes (threshold 1 each) from Dana's two ml-lead keys, for a tier
    that needs two ml-lead approvals: that is one approver, so the promotion needs review."""
    bundle, _ = gate
    data = copy.deepcopy(bundle.data)
    data["tiers"]["tiers"]["human_signoff"]["approvals"] = [
        {"role": "ml-lead", "count": 2}, {"role": "release-manager", "count": 1}]
    trust = replace(bundle.trust, thresholds={**bundle.trust.thresholds, "approval": 1})
    strict = replace(bundle, data=data, trust_policy=trust)
    path = promotion_with(tmp_path, None)
    doc = json.loads(path.read_text())
    approval = Statement.parse(Envelope.from_json((TAMPER / INDEX["good"]["approval"]).read_bytes()).payload)
    for name in ("ml-lead", "ml-lead-token", "release-manager"):
        key = SigningKey.load(ASSETS / "keys" / f"{name}.key")
        (tmp_path / f"approval-{name}.dsse.json").write_bytes(sign_envelope(approval.raw, [key]).to_json())
    doc["evidence"] = [e for e in doc["evidence"] if e["ref"] != "approval"] + [
        {"ref": f"approval-{n}", "path": f"approval-{n}.dsse.json"}
        for n in ("ml-lead", "ml-lead-token", "release-manager")]
    path.write_text(json.dumps(doc))
    decision = evaluate_promotion(load_request(path), strict, CompiledPolicy(strict), now=NOW).decision
    assert all(r.verified for r in decision.evidence)
    assert decision.outcome == "review", decision.summary()
    assert decision.approvals_needed == [{"role": "ml-lead", "count": 1}]


def test_the_verification_result_names_who_vouched() -> None:
    from slmgate.evidence import VerificationResult

    raw = (TAMPER / INDEX["good"]["approval"]).read_bytes()
    result = VerificationResult.passed(verify_envelope(raw, asset_trust(), subject_sha256=SUBJECT,
                                                       now=NOW, ref="approval"))
    assert result.signers == ("release-manager (release-manager, person: riley@example.com)",
                              "ml-lead (ml-lead, person: dana@example.com)")
    assert result.to_json()["issued_at"] == "2026-11-20T11:00:00Z"
