"""Facts: verified predicates normalised into the one JSON input the policy sees.

All time arithmetic (evidence ages, waiver expiry) happens here, never in Rego.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from slmgate.engine.policy._training import training_facts
from slmgate.engine.request._request import PromotionRequest
from slmgate.evidence import VerificationResult, VerifiedEvidence, format_time

# Kinds of which a request may carry several envelopes; any other kind must be unique.
# Data cards, one per dataset, are checked for ambiguity per dataset by ``bind_data_cards``.
MULTI_KINDS = frozenset({"approval", "data-card"})


def _metric(values: dict[str, Any]) -> dict[str, float | None]:
    """Candidate, baseline and drop; an imported result without a baseline keeps ``None`` there
    (minimum/maximum gates still apply, a maximum-drop gate then fails)."""
    candidate = round(float(values["candidate"]), 6)
    if values.get("baseline") is None:
        return {"candidate": candidate, "baseline": None, "drop": None}
    baseline = round(float(values["baseline"]), 6)
    return {"candidate": candidate, "baseline": baseline, "drop": round(baseline - candidate, 6)}


def _eval_facts(ev: VerifiedEvidence, request: PromotionRequest) -> dict[str, Any]:
    predicate = ev.statement.predicate
    layers: dict[str, dict[str, Any]] = {}
    for layer, body in predicate.get("layers", {}).items():
        metrics = body.get("metrics", {}) if isinstance(body, dict) else {}
        layers[layer] = {}
        for name, values in metrics.items():
            try:
                layers[layer][name] = _metric(values)
            except (KeyError, TypeError, ValueError):
                continue  # unreadable metric: reported as missing by the gate
    # An imported eval may name no baseline: then it matches none (and cannot approve).
    baseline = ((predicate.get("baseline") or {}).get("digest") or {}).get("sha256")
    return {
        "suite": predicate.get("suite", {}),
        "baseline_matches": baseline == request.baseline_sha256,
        "layers": layers,
    }


def _serving_facts(ev: VerifiedEvidence) -> dict[str, Any]:
    """The measured configuration (compared field by field with the request's
    ``deployment.serving``) and the measured latency and throughput (the SLOs)."""
    p = ev.statement.predicate
    latency = p.get("latency_ms", {})
    device = p.get("device", {})
    return {
        "device": device.get("type"),
        "device_name": device.get("name"),
        "dtype": p.get("dtype"),
        "batch_size": p.get("batch_size"),
        "quantization": p.get("quantization"),
        "runtime_version": (p.get("software") or {}).get("torch_version"),
        "latency_ms_p50": latency.get("p50"),
        "latency_ms_p95": latency.get("p95"),
        "throughput_per_s": p.get("throughput_per_s"),
    }


def _rollback_facts(ev: VerifiedEvidence, now: datetime) -> dict[str, Any]:
    p = ev.statement.predicate
    drill_age = None
    try:
        drill = date.fromisoformat(str(p.get("last_drill")))
        drill_age = (now.date() - drill).days
    except ValueError:
        pass  # no readable drill date: the policy sees null and refuses
    return {
        "owner": p.get("owner") or "",
        "mechanism": p.get("mechanism"),
        "max_rollback_minutes": p.get("max_rollback_minutes"),
        "drill_age_days": drill_age,
    }


def _training_data(doc: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    return [
        {"dataset": d["dataset"], "oldest_record": d["oldest_record"],
         "age_days": (now.date() - date.fromisoformat(d["oldest_record"])).days}
        for d in doc.get("training_data", [])
    ]


def _approval_facts(ev: VerifiedEvidence, request: PromotionRequest) -> list[dict[str, Any]]:
    p = ev.statement.predicate
    bound = (
        p.get("request_id") == request.id
        and p.get("request_digest") == request.approval_digest
        and p.get("decision") == "approve"
    )
    # Counted by principal: one person holding two keys is one approver. The e-mail (from
    # trust.yaml, never from the envelope) tells whether the approver is the requester.
    return [{"role": s.role, "signer": s.principal, "request_bound": bound, "email": s.email}
            for s in ev.signers]


def split_duplicates(
    verified: Sequence[VerifiedEvidence],
) -> tuple[list[VerifiedEvidence], list[VerificationResult]]:
    """Keep one envelope per single-valued kind; two of them make the kind ambiguous, so all of
    that kind are refused (fail closed) rather than one picked."""
    by_kind: dict[str, list[VerifiedEvidence]] = {}
    for ev in verified:
        by_kind.setdefault(ev.kind, []).append(ev)
    kept: list[VerifiedEvidence] = []
    refused: list[VerificationResult] = []
    for kind, items in by_kind.items():
        if len(items) > 1 and kind not in MULTI_KINDS:
            refs = ", ".join(i.ref for i in items)
            refused.extend(
                VerificationResult(ref=i.ref, envelope_sha256=i.envelope_sha256, verified=False,
                                   kind=kind, failed_step="ambiguous",
                                   reason=f"{len(items)} {kind} envelopes ({refs}); exactly 1 allowed")
                for i in items
            )
        else:
            kept.extend(items)
    return kept, refused


def signed_model_name(verified: Sequence[VerifiedEvidence], weights_sha256: str) -> str | None:
    """The model's identity: the subject name the verified weights manifest gives the
    candidate's weights, never the name the requester typed. ``None`` without a manifest."""
    for ev in verified:
        if ev.kind == "weights-manifest":
            for name, digest in ev.statement.subjects:
                if digest == weights_sha256:
                    return name
    return None


def _subject_names(verified: Sequence[VerifiedEvidence], weights_sha256: str) -> list[str]:
    """Every name the verified statements give the candidate's weights (all must agree)."""
    return sorted({name for ev in verified for name, digest in ev.statement.subjects
                   if digest == weights_sha256})


def active_waivers(
    waivers: Sequence[dict[str, Any]], model_name: str | None, now: datetime,
    weights_digest: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Waivers scoped to the signed ``model_name`` (and to ``weights_digest`` where a waiver
    pins one), split into active and expired (expiry day inclusive). No signed name, no
    waiver: a waiver never applies because of a name the requester typed."""
    if model_name is None:
        return [], []
    today = now.date().isoformat()
    scoped = [w for w in waivers if w["scope"]["model"] == model_name
              and w["scope"].get("weights_digest") in (None, weights_digest)]
    active = [w for w in scoped if w["expires"] >= today]
    expired = [w for w in scoped if w["expires"] < today]
    return active, expired


def build_facts(
    request: PromotionRequest,
    verified: Sequence[VerifiedEvidence],
    rejected: Sequence[VerificationResult],
    waivers: Sequence[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "present": sorted({ev.kind for ev in verified}),
        "rejected": [{"ref": r.ref, "step": r.failed_step, "reason": r.reason} for r in rejected],
        "approvals": [],
        "ages_days": {},
    }
    for ev in verified:
        evidence["ages_days"][ev.ref] = round((now - ev.statement.issued_at).total_seconds() / 86400, 3)
        if ev.kind == "eval-result":
            evidence["eval"] = _eval_facts(ev, request)
        elif ev.kind == "serving-config":
            evidence["serving"] = _serving_facts(ev)
        elif ev.kind == "rollback-plan":
            evidence["rollback"] = _rollback_facts(ev, now)
        elif ev.kind == "approval":
            evidence["approvals"].extend(_approval_facts(ev, request))
    evidence["training"] = training_facts(verified, now)
    signed_name = signed_model_name(verified, request.weights_sha256)
    evidence["subjects"] = {"model": signed_name,
                            "names": _subject_names(verified, request.weights_sha256)}
    doc = request.doc
    active, expired = active_waivers(waivers, signed_name, now, doc["model"]["weights_digest"])
    return {
        "evaluated_at": format_time(now),
        "request": {
            "id": doc["id"],
            "requested_by": str(doc["requested_by"]).strip().lower(),
            "model": {k: doc["model"][k] for k in ("name", "version", "weights_digest")},
            "baseline": {k: doc["baseline"][k] for k in ("name", "version", "weights_digest")},
            "change_classes": list(doc["change_classes"]),
            "deployment": doc["deployment"],
            "training_data": _training_data(doc, now),
        },
        "evidence": evidence,
        "waivers": {"active": active, "expired": expired},
    }
