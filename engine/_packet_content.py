"""What goes into an auditor packet: the decision, the release diff, the evidence table and the
signed files themselves, assembled from a decision and the bundle it was made under."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slmgate.evidence import VerifiedEvidence

from ._bundle import PolicyBundle
from ._decision import Decision
from ._request import PromotionRequest
from .packet import Attachment


def _gate_text(bounds: dict[str, float]) -> str:
    parts = []
    if "min" in bounds:
        parts.append(f"≥ {bounds['min']:g}")
    if "max" in bounds:
        parts.append(f"≤ {bounds['max']:g}")
    if "max_drop" in bounds:
        parts.append(f"drop ≤ {bounds['max_drop']:g}")
    return "; ".join(parts) or "—"


def _metric_rows(decision: Decision, facts: dict[str, Any], bundle: PolicyBundle) -> list[dict[str, Any]]:
    layers = facts["evidence"].get("eval", {}).get("layers", {})
    gates = bundle.data["gates"]["eval"]
    failed = {f["rule_id"] for f in decision.findings if f["severity"] == "deny"}
    rows = []
    for layer in sorted(set(layers) | set(gates)):
        for metric in sorted(set(layers.get(layer, {})) | set(gates.get(layer, {}))):
            values = layers.get(layer, {}).get(metric)
            bounds = gates.get(layer, {}).get(metric, {})
            rule_ids = {f"gate.{layer}.{metric}.{b}" for b in bounds}
            rows.append({
                "layer": layer, "metric": metric,
                "baseline": values["baseline"] if values else None,
                "candidate": values["candidate"] if values else None,
                "delta": round(values["candidate"] - values["baseline"], 6) if values else None,
                "gate": _gate_text(bounds) if bounds else "not gated",
                "passed": (not (rule_ids & failed)) if bounds else None,
            })
    return rows


def _serving(facts: dict[str, Any]) -> dict[str, Any] | None:
    s = facts["evidence"].get("serving")
    if not s:
        return None
    return {
        "device": f"{s.get('device') or '—'} / {s.get('device_name') or '—'}",
        "dtype": s.get("dtype"), "torch_version": s.get("torch_version"),
        "batch_size": s.get("batch_size"), "latency_ms_p50": s.get("latency_ms_p50"),
        "latency_ms_p95": s.get("latency_ms_p95"), "throughput_per_s": s.get("throughput_per_s"),
    }


def packet_content(
    decision: Decision, facts: dict[str, Any], bundle: PolicyBundle,
    verified: Sequence[VerifiedEvidence],
) -> dict[str, Any]:
    model = decision.request["model"]
    charter = bundle.data["charter"]
    by_ref = {ev.ref: ev for ev in verified}
    serving = _serving(facts)
    if serving is not None:
        ev = next((e for e in verified if e.kind == "serving-config"), None)
        if ev:
            serving["torch_version"] = ev.statement.predicate.get("software", {}).get("torch_version")
    return {
        "title": f"Promotion packet — {model['name']} {model['version']}",
        "generated_at": decision.evaluated_at,
        "decision": {
            "id": decision.id, "outcome": decision.outcome, "exit_code": decision.exit_code,
            "tier": decision.tier, "summary": decision.summary(),
            "evaluated_at": decision.evaluated_at, "bundle_digest": decision.bundle_digest,
            "policy_revision": decision.policy_revision, "findings": decision.findings,
            "checks": decision.checks,
            "approvals_needed": decision.approvals_needed,
            "waivers_applied": decision.waivers_applied,
            "waivers_expired": decision.waivers_expired,
        },
        "request": decision.request,
        "metrics": _metric_rows(decision, facts, bundle),
        "evidence": [
            {
                "ref": r.ref, "predicate_type": r.predicate_type or "—",
                "signers": list(r.signers), "signed_at": r.issued_at, "verified": r.verified,
                "failure": f"{r.failed_step}: {r.reason}" if not r.verified else None,
                "subject_digest": f"sha256:{r.subject_sha256}" if r.subject_sha256 else None,
                "file": f"evidence/{r.ref}.dsse.json" if r.envelope_sha256 else None,
                "kind": by_ref[r.ref].kind if r.ref in by_ref else r.kind,
            }
            for r in decision.evidence
        ],
        "serving": serving,
        "charter": {"program": charter["title"], "problem_statement": charter["problem_statement"],
                    "owner": charter["owner"]},
    }


def packet_attachments(
    request: PromotionRequest, record_envelope: bytes | None, decision: Decision
) -> list[Attachment]:
    attachments = [
        Attachment(f"evidence/{item.ref}.dsse.json", item.raw,
                   f"DSSE envelope '{item.ref}' exactly as submitted")
        for item in request.evidence
    ]
    attachments.append(Attachment("request.json", request.raw, "The promotion request as submitted"))
    if record_envelope is not None:
        attachments.append(Attachment("decision-record.dsse.json", record_envelope,
                                      f"Signed decision record {decision.id}"))
    return attachments
