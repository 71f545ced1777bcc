"""Deciding one promotion: bind the weights, verify the request's evidence against the trust
policy, build the facts and evaluate the policy. Never raises for bad evidence or a failing
policy: both deny. Recording and rendering are the main path's (``slmgate.engine.promote``)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._decision import Decision, checked_policy_output, decision_id, failsafe
from slmgate.engine.policy._facts import build_facts, split_duplicates
from slmgate.engine.policy._training import bind_data_cards, binds_to_weights
from slmgate.engine.request._request import PromotionRequest, is_supplied_approval, withheld_reason
from slmgate.evidence import (
    TrustPolicy,
    VerificationResult,
    VerifiedEvidence,
    WeightsManifest,
    canonical_json,
    format_time,
    hash_model_dir,
    verify_envelope,
)
from slmgate.evidence.errors import (
    EvidenceInvalid,
    KeyNotAuthorizedError,
    ManifestMismatchError,
    PolicyError,
    SubjectMismatchError,
)

log = logging.getLogger("slmgate")


@dataclass(frozen=True)
class PromotionResult:
    decision: Decision
    facts: dict[str, Any]
    verified: tuple[VerifiedEvidence, ...]


def _bind_weights(request: PromotionRequest) -> VerificationResult | None:
    """Re-hash the weights directory named in the request; a mismatch is a refusal."""
    model_dir = request.model_dir()
    if model_dir is None:
        return None
    actual = hash_model_dir(model_dir)
    if actual.root_digest == request.weights_sha256:
        return None
    return VerificationResult(
        ref="weights", envelope_sha256="", verified=False, kind="weights",
        failed_step="weights-binding",
        reason=f"weights at {model_dir} hash to sha256:{actual.root_digest[:16]}…, "
               f"the request promotes sha256:{request.weights_sha256[:16]}…",
    )


# Weights manifests that passed ``_check_manifest``, by their verified statement's bytes (from
# which the check reads everything): what-if checks one stored manifest for every decision that
# holds it. Bounded; a manifest that fails is checked again each time.
_MANIFESTS_PASSED: set[bytes] = set()
_MANIFESTS_KEPT = 256


def _check_manifest(ev: VerifiedEvidence) -> None:
    if ev.statement.raw in _MANIFESTS_PASSED:
        return
    manifest = WeightsManifest.from_predicate(ev.statement.subjects[0][0], ev.statement.predicate)
    if not ev.statement.is_about(manifest.root_digest):
        raise ManifestMismatchError(
            f"the manifest's resources hash to {manifest.root_digest[:16]}…, not its subject"
        )
    if len(_MANIFESTS_PASSED) >= _MANIFESTS_KEPT:
        _MANIFESTS_PASSED.clear()
    _MANIFESTS_PASSED.add(ev.statement.raw)


class EnvelopeVerifier(Protocol):
    """``verify_envelope``'s signature: what checks one envelope against a trust policy."""

    def __call__(self, raw: bytes, trust: TrustPolicy, *, subject_sha256: str | None,
                 now: datetime, ref: str = ...) -> VerifiedEvidence: ...


def verify_request_evidence(
    request: PromotionRequest, bundle: PolicyBundle, now: datetime, *, bind_weights: bool = True,
    verify: EnvelopeVerifier = verify_envelope,
) -> tuple[list[VerifiedEvidence], list[VerificationResult]]:
    """Verify every envelope of the request against the bundle's trust policy; with
    ``bind_weights``, re-hash the weights directory the request names.

    Subjects are bound by kind: every statement must be about the candidate's weights, except
    data cards, which are about datasets: they are verified unbound and then count only when
    the verified training-run names their dataset (``_training.bind_data_cards``)."""
    verified: list[VerifiedEvidence] = []
    results: list[VerificationResult] = []
    binding = _bind_weights(request) if bind_weights else None
    if binding:
        results.append(binding)
    for item in request.evidence:
        reason = withheld_reason(item.raw)
        if reason is not None:  # not an envelope: its bytes were never kept
            results.append(VerificationResult(
                ref=item.ref, envelope_sha256=hashlib.sha256(item.raw).hexdigest(),
                verified=False, failed_step="parse", reason=reason))
            continue
        to_weights = binds_to_weights(item)
        try:
            ev = verify(item.raw, bundle.trust, now=now, ref=item.ref,
                        subject_sha256=request.weights_sha256 if to_weights else None)
            if not to_weights and ev.kind != "data-card":  # cannot happen: one payload, read twice
                raise SubjectMismatchError(f"{ev.kind} verified without its weights binding")
            if ev.kind == "weights-manifest":
                _check_manifest(ev)
            if is_supplied_approval(item.ref) and ev.kind != "approval":
                raise KeyNotAuthorizedError(
                    f"supplied as an approval (--approval) but it is {ev.kind} evidence")
        except EvidenceInvalid as exc:
            log.info("evidence %s refused at %s: %s", item.ref, exc.step, exc.message)
            results.append(VerificationResult.failed(item.ref, item.raw, exc))
            continue
        except (KeyError, TypeError, ValueError) as exc:  # malformed manifest predicate
            err = ManifestMismatchError(f"malformed weights manifest ({exc})")
            results.append(VerificationResult.failed(item.ref, item.raw, err))
            continue
        verified.append(ev)
    kept, ambiguous = split_duplicates(verified)
    kept, unbound = bind_data_cards(kept)
    results.extend(ev.result for ev in kept)
    results.extend(ambiguous)
    results.extend(unbound)
    order = {e.ref: i for i, e in enumerate(request.evidence)}
    results.sort(key=lambda r: order.get(r.ref, -1))
    return kept, results


# Findings that explain the others (refused evidence, a broken policy) are listed first.
_ROOT_CAUSES = ("evidence.verified", "engine.failsafe", "policy.error", "policy.complete")


def _finding_order(finding: dict[str, Any]) -> tuple[int, int, str]:
    return ({"deny": 0, "review": 1}.get(finding["severity"], 2),
            0 if finding["rule_id"] in _ROOT_CAUSES else 1, finding["rule_id"])


class DecisionEngine(Protocol):
    """What evaluates the policy: an embedded engine (``RegorusPolicy``, ``CompiledPolicy``) or
    an ``OpaServerPolicy``; ``_engines`` chooses by name."""

    def evaluate(self, facts: dict[str, Any]) -> dict[str, Any]: ...


def evaluate_promotion(
    request: PromotionRequest, bundle: PolicyBundle, policy: DecisionEngine, *,
    now: datetime | None = None, bind_weights: bool = True,
    verify: EnvelopeVerifier = verify_envelope,
) -> PromotionResult:
    """Decide one promotion. Never raises for bad evidence or a failing policy: both deny.

    ``bind_weights=False`` skips re-hashing the weights directory (replays of recorded
    decisions, where only the signed manifest remains); ``verify`` replaces ``verify_envelope``
    (what-if reuses verification results through a cache with the same contract)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    verified, results = verify_request_evidence(request, bundle, now, bind_weights=bind_weights,
                                                verify=verify)
    # An approval supplied beside the request (--approval) that does not verify simply does not
    # count: it is listed with the reason it was refused, and cannot deny what stands without it.
    rejected = [r for r in results if not r.verified and not is_supplied_approval(r.ref)]
    facts = build_facts(request, verified, rejected, bundle.data["waivers"]["waivers"], now)
    facts_digest = "sha256:" + hashlib.sha256(canonical_json(facts)).hexdigest()
    evaluated_at = format_time(now)
    error = None
    try:
        output = failsafe(checked_policy_output(policy.evaluate(facts)),
                          [r for r in results if not is_supplied_approval(r.ref)])
    except PolicyError as exc:
        error = exc.message
        output = {
            "outcome": "deny", "tier": "unknown", "checks": [], "approvals_needed": [],
            "waivers_applied": [], "waivers_expired": [],
            "findings": [{"rule_id": "policy.error", "severity": "deny", "evidence_ref": "policy",
                          "message": exc.message}],
        }
    request_digest = "sha256:" + hashlib.sha256(request.raw).hexdigest()
    decision = Decision(
        id=decision_id(request_digest, bundle.digest, evaluated_at),
        outcome=output["outcome"], tier=output["tier"],
        findings=sorted(output["findings"], key=_finding_order),
        checks=sorted(output["checks"], key=lambda c: c["rule_id"]),
        approvals_needed=output["approvals_needed"], waivers_applied=output["waivers_applied"],
        waivers_expired=output["waivers_expired"],
        request={
            "id": request.id, "digest": request_digest, "summary": request.doc["summary"],
            "requested_by": request.doc["requested_by"],
            # The model's identity is the signed one wherever the decision is read (ledger
            # log, packet title, waivers); the typed name only where nothing was signed.
            "model": {**facts["request"]["model"],
                      "name": facts["evidence"]["subjects"]["model"]
                      or facts["request"]["model"]["name"]},
            "baseline": facts["request"]["baseline"],
            "change_classes": request.doc["change_classes"],
            "changes": request.doc.get("changes", []),
        },
        evidence=results, bundle_digest=bundle.digest, policy_revision=bundle.revision,
        evaluated_at=evaluated_at, error=error, facts_digest=facts_digest,
    )
    return PromotionResult(decision, facts, tuple(verified))
