"""`slmgate promote`'s text on a promotion of many envelopes: a screenful, not one line each."""

from __future__ import annotations

from types import SimpleNamespace

from slmgate.engine.cli._main import _LISTED, _evidence_lines
from slmgate.engine.policy._decision import Decision
from slmgate.evidence import VerificationResult


def _decision(evidence: list[VerificationResult]) -> Decision:
    return SimpleNamespace(evidence=evidence)  # type: ignore[return-value]  # all the lines read


def _rows(n: int, verified: bool, kind: str = "approval") -> list[VerificationResult]:
    return [VerificationResult(f"{kind}-{i:04d}", "0" * 64, verified, kind=kind,
                               signers=("ml-lead (ml-lead, person)",) if verified else (),
                               failed_step=None if verified else "freshness",
                               reason=None if verified else "stale") for i in range(n)]


def test_up_to_the_limit_every_envelope_is_a_line_in_request_order() -> None:
    rows = _rows(_LISTED - 1, True)
    rows.insert(3, _rows(1, False, "eval-result")[0])
    lines = _evidence_lines(_decision(rows), explain=False)
    assert len(lines) == _LISTED
    assert lines[3].startswith("  evidence FAIL eval-result-0000: freshness: stale")


def test_past_the_limit_the_rest_is_summarised_by_kind_and_refusals_still_show() -> None:
    rows = _rows(997, True) + _rows(3, False, "eval-result") + _rows(40, False, "approval")
    lines = _evidence_lines(_decision(rows), explain=False)
    assert len(lines) == 2 * _LISTED + 2
    assert lines[_LISTED] == ("  evidence ok   … and 967 more verified (approval 967; "
                              "--explain or --format json lists every one)")
    refused = [line for line in lines if line.startswith("  evidence FAIL ") and "…" not in line]
    assert refused[0] == "  evidence FAIL eval-result-0000: freshness: stale" and len(refused) == _LISTED
    assert lines[-1].startswith("  evidence FAIL … and 13 more refused (approval 13;")
    assert len(_evidence_lines(_decision(rows), explain=True)) == len(rows)
