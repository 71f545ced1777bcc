"""The decision: outcome, tier, findings and what it was decided under; and its exit code."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slmgate.engine._schemas import first_problem
from slmgate.engine.policy._messages import render_messages
from slmgate.engine.request._request import is_supplied_approval
from slmgate.evidence import VerificationResult
from slmgate.evidence.errors import PolicyError

# The fields of a decision-log record (`ledger log`), as mask paths (lists are walked through):
# what the charter's `decision_log.mask` may name. Kept beside the decision, so the bundle's
# validation needs nothing from the ledger.
DECISION_LOG_FIELDS = frozenset({
    "decision_id", "seq", "timestamp", "recorded_at", "commit", "outcome", "exit_code", "tier",
    "summary", "model", "model.name", "model.version", "model.weights_digest",
    "request", "request.id", "request.digest", "request.summary", "request.requested_by",
    "request.change_classes", "request.changes", "bundle", "bundle.digest", "bundle.revision",
    "findings", "findings.rule_id", "findings.severity", "findings.message", "findings.evidence_ref",
    "approvals_needed", "approvals_needed.role", "approvals_needed.count",
    "evidence", "evidence.ref", "evidence.kind", "evidence.verified", "evidence.envelope_sha256",
    "evidence.signers", "evidence.failed_step", "evidence.reason",
})


EXIT_APPROVED = 0
EXIT_DENIED = 1
EXIT_INVALID_INPUT = 2
EXIT_REVIEW = 3
EXIT_UNVERIFIED = 4


@dataclass(frozen=True)
class Decision:
    id: str
    outcome: str  # approve | review | deny
    tier: str
    findings: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    approvals_needed: list[dict[str, Any]]
    waivers_applied: list[dict[str, Any]]
    waivers_expired: list[dict[str, Any]]
    request: dict[str, Any]  # id, digest, model, baseline, change_classes
    evidence: list[VerificationResult]
    bundle_digest: str
    policy_revision: str | None
    evaluated_at: str
    error: str | None = None  # set when the policy itself failed (exit 4)
    facts_digest: str = field(default="")

    @property
    def unverified(self) -> bool:
        """The policy failed, or an envelope of the request was refused (an approval supplied
        beside it that was refused only does not count: ``promote --approval``)."""
        return self.error is not None or any(not r.verified and not is_supplied_approval(r.ref)
                                             for r in self.evidence)

    @property
    def exit_code(self) -> int:
        """0 approved, 1 denied, 3 review required, 4 denied because something could not be
        verified or evaluated."""
        if self.outcome == "approve" and not self.unverified:
            return EXIT_APPROVED
        if self.outcome == "review" and not self.unverified:
            return EXIT_REVIEW
        return EXIT_UNVERIFIED if self.unverified else EXIT_DENIED

    def summary(self) -> str:
        if self.error:
            return f"Denied: the policy could not be evaluated ({self.error})."
        blocking = [f for f in self.findings if f["severity"] in ("deny", "review")]
        if self.outcome == "approve":
            waived = f", {len(self.waivers_applied)} under waiver" if self.waivers_applied else ""
            return (f"Approved: all {len(self.checks)} checks of the {self.tier} tier are satisfied"
                    f"{waived}.")
        if self.outcome == "review":
            roles = ", ".join(f"{a['count']}× {a['role']}" for a in self.approvals_needed)
            return f"Human review required ({self.tier} tier): needs {roles or 'sign-off'}."
        first = "; ".join(f["rule_id"] for f in blocking[:4])
        more = f" and {len(blocking) - 4} more" if len(blocking) > 4 else ""
        return f"Denied: {len(blocking)} blocking finding(s): {first}{more}."

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "outcome": self.outcome, "exit_code": self.exit_code, "tier": self.tier,
            "summary": self.summary(), "evaluated_at": self.evaluated_at,
            "bundle_digest": self.bundle_digest, "policy_revision": self.policy_revision,
            "request": self.request, "findings": self.findings, "checks": self.checks,
            "approvals_needed": self.approvals_needed, "waivers_applied": self.waivers_applied,
            "waivers_expired": self.waivers_expired,
            "evidence": [r.to_json() for r in self.evidence],
            "facts_digest": self.facts_digest, "error": self.error,
        }


def decision_id(request_digest: str, bundle_digest: str, evaluated_at: str) -> str:
    h = hashlib.sha256(f"{request_digest}\n{bundle_digest}\n{evaluated_at}".encode())
    return "dec-" + h.hexdigest()[:20]


def _by_rule(row: Any) -> tuple[str, str]:
    if isinstance(row, dict):
        return str(row.get("rule_id")), str(row.get("message"))
    return str(row), str(row)


def _by(name: str) -> Callable[[Any], tuple[str]]:
    return lambda row: (str(row.get(name)) if isinstance(row, dict) else str(row),)


_ORDER: tuple[tuple[str, Callable[[Any], tuple[str, ...]]], ...] = (
    ("checks", _by_rule), ("findings", _by_rule), ("approvals_needed", _by("role")),
    ("waivers_applied", _by("id")), ("waivers_expired", _by("id")))


def engine_neutral(output: dict[str, Any]) -> dict[str, Any]:
    """The policy's output in one form whatever engine made it: messages rendered in Python
    (``_messages``) and every array the policy builds from a set sorted (checks and findings by
    rule id then message, approvals by role, waivers by id), as OPA orders sets."""
    out = render_messages(output)
    for key, order in _ORDER:
        if isinstance(out.get(key), list):
            out[key] = sorted(out[key], key=order)
    return out


def checked_policy_output(output: dict[str, Any]) -> dict[str, Any]:
    """The policy's decision object in its engine-neutral form (``engine_neutral``); raise
    ``PolicyError`` unless it is well-formed."""
    if not isinstance(output, dict):
        raise PolicyError("the policy returned a malformed decision: not an object")
    output = engine_neutral(output)
    problem = first_problem(output, "policy-decision")
    if problem is not None:
        where, message, _ = problem
        raise PolicyError(f"the policy returned a malformed decision: {where or '(decision)'}: {message}")
    return output


def failsafe(output: dict[str, Any], evidence: list[VerificationResult]) -> dict[str, Any]:
    """Defence in depth: whatever the policy says, refused evidence never yields approve/review."""
    refused = [r for r in evidence if not r.verified]
    if not refused or output["outcome"] == "deny":
        return output
    finding = {
        "rule_id": "engine.failsafe", "severity": "deny", "evidence_ref": "evidence",
        "message": f"the policy returned {output['outcome']!r} although {len(refused)} envelope(s) "
                   "were refused; slmgate denies",
    }
    return {**output, "outcome": "deny", "findings": [*output["findings"], finding]}
