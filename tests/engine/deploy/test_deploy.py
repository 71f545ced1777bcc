"""`slmgate deploy verify` and `deploy status` through the real CLI: the approved weights
verified in a region and recorded, and each bad path refused with the check that refused it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slmgate.engine import load_bundle
from slmgate.engine.deploy._verify import DeploymentCheck
from slmgate.engine.ledger._attestation import PendingAttestation
from slmgate.engine.ledger._store import Ledger
from slmgate.evidence import SigningKey, make_statement, sign_envelope
from tests.conftest import MODEL, NOW
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate  # noqa: F401  (fixture)


def _verify(kit: LedgerKit, ledger: Path, model: Path, region: str, decision: str,
            *extra: str | Path) -> tuple[int, dict]:
    run = slmgate("deploy", "verify", model, "--region", region, "--ledger", ledger,
                  "--decision", decision, "--trust", kit.trust, "--format", "json", *extra)
    return run.returncode, (json.loads(run.stdout) if run.stdout.strip().startswith("{") else
                            {"stderr": run.stderr})


@pytest.fixture
def ledger(ledger_kit: LedgerKit, tmp_path: Path) -> Path:  # noqa: F811
    return ledger_kit.copy(tmp_path / "ledger")


def test_the_approved_weights_verify_in_an_allowed_region_and_are_recorded(
        ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    key = ledger_kit.world.secrets / "slmgate-gate.key"
    code, doc = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "eu-west",
                        ledger_kit.ids[0], "--record", "--signing-key", key, "--host", "inf-1")
    assert code == 0, doc
    assert doc["verified"] and doc["model"]["weights_digest"] == f"sha256:{ledger_kit.world.candidate_sha}"
    assert doc["attestation"].startswith("deployment-")
    verify = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert verify.returncode == 0, verify.stdout
    status = slmgate("deploy", "status", "--ledger", ledger, "--trust", ledger_kit.trust,
                     "--format", "json")
    assert status.returncode == 0, status.stdout
    regions = json.loads(status.stdout)["regions"]
    assert [(r["region"], r["decision"], r["host"], r["flags"]) for r in regions] == [
        ("eu-west", ledger_kit.ids[0], "inf-1", [])]
    # the decision log and replay still see decisions only
    log = slmgate("ledger", "log", "--ledger", ledger, "--format", "jsonl")
    assert log.returncode == 0 and len(log.stdout.splitlines()) == 3


def test_an_unknown_decision_is_bad_input(ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    code, doc = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "eu-west", "dec-0000000000nothere")
    assert code == 2 and "no decision" in doc["stderr"]


def test_a_denied_decision_is_not_an_approval(ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    code, doc = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "eu-west", ledger_kit.ids[1])
    assert code == 4 and doc["check"] == "approval" and "DENY" in doc["message"]


def test_a_review_decision_is_not_an_approval(ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    code, doc = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "eu-west", ledger_kit.ids[2])
    assert code == 4 and doc["check"] == "approval"


def test_other_weights_are_a_digest_mismatch_and_nothing_is_recorded(
        ledger_kit: LedgerKit, ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    served = tmp_path / "served"
    shutil.copytree(ledger_kit.world.candidate, served)
    victim = sorted(p for p in served.rglob("*") if p.is_file())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    before = sorted(p.name for p in (ledger / "entries").rglob("*"))
    code, doc = _verify(ledger_kit, ledger, served, "eu-west", ledger_kit.ids[0], "--record",
                        "--signing-key", ledger_kit.world.secrets / "slmgate-gate.key")
    assert code == 4 and doc["check"] == "digest", doc
    assert f"changed: {victim.name}" in doc["message"]
    assert sorted(p.name for p in (ledger / "entries").rglob("*")) == before


def test_a_region_outside_the_residency_is_refused(ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    code, doc = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "us-east", ledger_kit.ids[0])
    assert code == 4 and doc["check"] == "region", doc
    assert "us-east" in doc["message"]


def test_a_record_not_signed_by_the_trusted_gate_is_refused(
        ledger_kit: LedgerKit, ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "other.pub"
    other.write_bytes(SigningKey.generate().public_key.to_pem())
    run = slmgate("deploy", "verify", ledger_kit.world.candidate, "--region", "eu-west",
                  "--ledger", ledger, "--decision", ledger_kit.ids[0], "--gate-key", other)
    assert run.returncode == 4 and "decision:" in run.stdout and "not signed" in run.stdout


def test_record_needs_the_signing_key(ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    code, _ = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "eu-west", ledger_kit.ids[0],
                      "--record")
    assert code == 2


def _attest(kit: LedgerKit, ledger: Path, region: str, digest: str, *, at=NOW,  # type: ignore[no-untyped-def]
            signer: SigningKey | None = None) -> None:
    gate = kit.world.key("slmgate-gate")
    check = DeploymentCheck(region, "h", MODEL, f"sha256:{digest}", 2, kit.ids[0],
                            load_bundle(kit.world.policies).digest, "ticket_routing", ("ticket_text",), at)
    envelope = sign_envelope(make_statement(MODEL, digest, "deployment-attestation", check.predicate()),
                             [signer or gate]).to_json()
    Ledger(ledger, signing_key=gate).record_pending(
        PendingAttestation("deployment-attestation", envelope, f"deploy {region}"))


def test_status_flags_a_drifted_region_and_a_stale_verification(
        ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    _attest(ledger_kit, ledger, "eu-west", ledger_kit.world.candidate_sha)
    _attest(ledger_kit, ledger, "eu-central", ledger_kit.world.baseline_sha)
    run = slmgate("deploy", "status", "--ledger", ledger, "--trust", ledger_kit.trust,
                  "--at", "2030-01-01T00:00:00Z", "--format", "json")
    assert run.returncode == 1
    flags = {r["region"]: r["flags"] for r in json.loads(run.stdout)["regions"]}
    assert any(f.startswith("drift:") for f in flags["eu-central"])
    assert any(f.startswith("stale:") for f in flags["eu-west"])
    assert slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust).returncode == 0


def test_an_attestation_not_signed_by_the_gate_fails_ledger_verify_and_status(
        ledger_kit: LedgerKit, ledger: Path) -> None:  # noqa: F811
    _attest(ledger_kit, ledger, "eu-west", ledger_kit.world.candidate_sha,
            signer=ledger_kit.world.key("runtime"))
    verify = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert verify.returncode == 4 and "trusted gate key" in verify.stdout
    status = slmgate("deploy", "status", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert status.returncode == 1 and "REFUSED" in status.stdout


def test_a_checkpoint_counts_attestations_as_chain_entries(
        ledger_kit: LedgerKit, ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    _attest(ledger_kit, ledger, "eu-west", ledger_kit.world.candidate_sha)
    cp = tmp_path / "cp.json"
    made = slmgate("ledger", "checkpoint", "--ledger", ledger, "--signing-key",
                   ledger_kit.world.secrets / "slmgate-gate.key", "--trust", ledger_kit.trust, "-o", cp)
    assert made.returncode == 0, made.stdout + made.stderr
    verify = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust,
                     "--checkpoint", cp)
    assert verify.returncode == 0, verify.stdout


@pytest.mark.parametrize("damage", ["bundle removed", "charter unreadable"])
def test_a_stored_bundle_missing_or_unreadable_cannot_verify_the_region(
        ledger_kit: LedgerKit, ledger: Path, damage: str) -> None:  # noqa: F811
    """The README's contract: 4 naming the check that could not run (never 2, never verified)."""
    import subprocess

    digest = load_bundle(ledger_kit.world.policies).digest.removeprefix("sha256:")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=ledger, check=True, capture_output=True)

    if damage == "bundle removed":
        git("rm", "-r", "-q", f"bundles/{digest}")
    else:
        (ledger / "bundles" / digest / "charter.yaml").write_text("program: [unclosed\n")
        git("add", f"bundles/{digest}/charter.yaml")
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", damage)
    code, doc = _verify(ledger_kit, ledger, ledger_kit.world.candidate, "eu-west", ledger_kit.ids[0])
    assert code == 4 and doc["check"] == "region", doc
    assert ("cannot be read" in doc["message"]), doc
