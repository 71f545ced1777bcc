"""Incremental verify: `ledger verify --from CHECKPOINT.json` trusts the decisions a signed
checkpoint saw and checks only the commits after it — and fails closed (exit 4) when the
checkpoint is not on the current history, an entry after it was rewritten, or it was signed by
a key outside the root of trust."""

from __future__ import annotations

import json
from pathlib import Path

from slmgate.engine import Ledger
from slmgate.engine.ledger._store import record_path
from slmgate.evidence import Envelope, SigningKey, sign_envelope
from tests.engine.ledger.test_ledger import (
    LedgerKit,
    _forge_record,
    _rewrite,
    ledger_kit,
    record_promotions,
    slmgate,
)
from tests.engine.ledger.test_ledger_checkpoint import _checkpoint, _git

__all__ = ["ledger_kit"]  # the session fixture, shared with test_ledger




def _verify_from(kit: LedgerKit, ledger: Path, cp: Path, *more: str) -> tuple[int, str]:
    r = slmgate("ledger", "verify", "--ledger", ledger, "--trust", kit.trust, "--from", cp, *more)
    return r.returncode, r.stdout + r.stderr


def _grow(kit: LedgerKit, ledger: Path, request: int = 0, minutes: int = 50) -> str:
    ledger_obj = Ledger(ledger, signing_key=kit.world.key("slmgate-gate"))
    return record_promotions(kit.world, ledger_obj, [kit.requests[request]], minutes=minutes)[0]


def test_verify_from_a_checkpoint_checks_only_the_new_decisions(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    _grow(ledger_kit, ledger)
    code, out = _verify_from(ledger_kit, ledger, cp, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ok"] and doc["decisions"] == 4 and doc["entries_checked"] == 1, doc
    assert doc["verified_from"] == str(cp)
    # the head entry agrees with a full verify's
    full = json.loads(slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust,
                              "--format", "json").stdout)
    assert full["head_entry"] == doc["head_entry"] and full["decisions"] == 4


def test_verify_from_the_head_checkpoint_checks_nothing_and_passes(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    code, out = _verify_from(ledger_kit, ledger, cp)
    assert code == 0 and out.startswith("OK:") and "3 decision(s)" in out, out


def test_a_checkpoint_not_on_the_current_history_fails(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    _git(ledger, "reset", "--hard", "HEAD~1")  # cut back, then grown again: same length
    _grow(ledger_kit, ledger, minutes=60)
    code, out = _verify_from(ledger_kit, ledger, cp)
    assert code == 4 and "not on the current history" in out, out


def test_a_checkpoint_of_another_ledger_fails(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    other = ledger_kit.copy(tmp_path / "other")
    _grow(ledger_kit, other, minutes=70)
    cp = _checkpoint(ledger_kit, other, tmp_path / "cp.json")
    ledger = ledger_kit.copy(tmp_path / "ledger")
    code, out = _verify_from(ledger_kit, ledger, cp)
    assert code == 4 and "not in the ledger" in out, out


def test_a_rewritten_entry_after_the_checkpoint_fails(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    fourth = _grow(ledger_kit, ledger)
    _grow(ledger_kit, ledger, request=1, minutes=55)

    def forge(q: Path, seq: int) -> None:
        if seq == 4:
            _forge_record(q, q / record_path(fourth), commit=False)

    _rewrite(ledger, 3, forge)  # decision 4 forged, 4 and 5 re-committed cleanly
    code, out = _verify_from(ledger_kit, ledger, cp)
    assert code == 4 and out.startswith("FAIL:") and "decision 4" in out, out
    assert "signature" in out, out


def test_a_checkpoint_signed_by_another_key_fails_and_nothing_is_verified(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    forged = sign_envelope(Envelope.from_json(cp.read_bytes()).payload, [SigningKey.generate()])
    (tmp_path / "forged.json").write_bytes(forged.to_json())
    code, out = _verify_from(ledger_kit, ledger, tmp_path / "forged.json")
    assert code == 4 and "not signed by a trusted gate key" in out and "nothing verified" in out, out


def test_a_malformed_from_checkpoint_is_bad_input(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{}")
    code, out = _verify_from(ledger_kit, ledger_kit.ledger, tmp_path / "bad.json")
    assert code == 2 and "bad.json" in out, out


def test_an_edited_working_tree_fails_verify_from(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    cp = _checkpoint(ledger_kit, ledger, tmp_path / "cp.json")
    target = ledger / record_path(ledger_kit.ids[0])
    target.write_bytes(target.read_bytes() + b" ")
    code, out = _verify_from(ledger_kit, ledger, cp)
    assert code == 4 and "working tree" in out and "edited" in out, out
