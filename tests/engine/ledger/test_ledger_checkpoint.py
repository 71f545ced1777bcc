"""Signed ledger checkpoints: the newest decisions cut off the end of the ledger (or replaced)
are caught by a checkpoint kept outside it; a checkpoint not signed by the gate is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from slmgate.engine import Ledger
from slmgate.evidence import SigningKey, sign_envelope
from tests.conftest import recent
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, record_promotions, slmgate

__all__ = ["ledger_kit"]  # the session fixture, shared with test_ledger


def _git(ledger: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=ledger, check=True, capture_output=True)


def _checkpoint(kit: LedgerKit, ledger: Path, out: Path) -> Path:
    r = slmgate("ledger", "checkpoint", "--ledger", ledger, "--signing-key",
                kit.world.secrets / "slmgate-gate.key", "-o", out, "--at", "2026-11-20T13:00:00Z")
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def _verify(kit: LedgerKit, ledger: Path, *checkpoints: Path) -> tuple[int, str]:
    args = [a for cp in checkpoints for a in ("--checkpoint", cp)]
    r = slmgate("ledger", "verify", "--ledger", ledger, "--trust", kit.trust, *args)
    return r.returncode, r.stdout + r.stderr


def test_a_ledger_cut_back_verifies_without_a_checkpoint_and_fails_with_one(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    assert _verify(ledger_kit, ledger, cp)[0] == 0
    _git(ledger, "reset", "--hard", "HEAD~1")  # the attack: the newest decision is gone
    code, out = _verify(ledger_kit, ledger)
    assert code == 0, out  # the chain alone cannot tell
    code, out = _verify(ledger_kit, ledger, cp)
    assert code == 4, out
    assert "saw 3 decision(s), the ledger holds 2" in out and "cut" in out


def test_the_newest_decision_replaced_fails(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    _git(ledger, "reset", "--hard", "HEAD~1")
    record_promotions(ledger_kit.world, Ledger(ledger, signing_key=ledger_kit.world.key("slmgate-gate")),
                      [ledger_kit.requests[0]], minutes=30)  # another decision takes position 3
    assert _verify(ledger_kit, ledger)[0] == 0
    code, out = _verify(ledger_kit, ledger, cp)
    assert code == 4 and "names entry 3" in out and "rewritten" in out, out


def test_a_ledger_that_grew_since_the_checkpoint_verifies(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    early = _checkpoint(ledger_kit, ledger, tmp_path / "early.json")
    record_promotions(ledger_kit.world, Ledger(ledger, signing_key=ledger_kit.world.key("slmgate-gate")),
                      [ledger_kit.requests[1]], minutes=40)
    late = _checkpoint(ledger_kit, ledger, tmp_path / "late.json")
    code, out = _verify(ledger_kit, ledger, early, late)
    assert code == 0, out
    assert json.loads(late.read_text())["payloadType"] == "application/vnd.in-toto+json"


def test_a_checkpoint_not_signed_by_the_gate_fails(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    from slmgate.evidence import Envelope
    forged = sign_envelope(Envelope.from_json(cp.read_bytes()).payload, [SigningKey.generate()])
    (tmp_path / "forged.json").write_bytes(forged.to_json())
    code, out = _verify(ledger_kit, ledger, tmp_path / "forged.json")
    assert code == 4 and "not signed by a trusted gate key" in out, out


def test_a_malformed_checkpoint_is_bad_input(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{}")
    code, out = _verify(ledger_kit, ledger_kit.ledger, tmp_path / "bad.json")
    assert code == 2 and "bad.json" in out, out


def test_a_tampered_ledger_is_never_checkpointed(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    marker = ledger / "slmgate-ledger"
    marker.write_bytes(marker.read_bytes() + b"edited\n")
    r = slmgate("ledger", "checkpoint", "--ledger", ledger, "--signing-key",
                ledger_kit.world.secrets / "slmgate-gate.key", "-o", tmp_path / "cp.json")
    assert r.returncode == 4, r.stdout + r.stderr
    assert not (tmp_path / "cp.json").exists()


def test_promote_writes_the_checkpoint_after_recording(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = tmp_path / "artifacts" / "checkpoint.json"
    world = ledger_kit.world
    # a recorded decision is made at the real time (--at is refused with --ledger)
    request = world.request(tmp_path / "req", world.standard_evidence(when=recent()),
                            rid="req-checkpoint")
    r = slmgate("promote", request, "--policies", world.policies, "--ledger", ledger,
                "--signing-key", world.secrets / "slmgate-gate.key", "--checkpoint-out", cp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _verify(ledger_kit, ledger, cp)[0] == 0
    _git(ledger, "reset", "--hard", "HEAD~1")
    code, out = _verify(ledger_kit, ledger, cp)
    assert code == 4 and "saw 4 decision(s)" in out, out


def test_checkpoint_out_without_a_ledger_is_refused(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    r = slmgate("promote", ledger_kit.requests[0], "--policies", ledger_kit.world.policies,
                "--checkpoint-out", tmp_path / "cp.json")
    assert r.returncode == 2 and "--checkpoint-out needs --ledger" in r.stderr
    assert not (tmp_path / "cp.json").exists()
