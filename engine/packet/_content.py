"""What goes into an auditor packet: the decision, the one-page release diff, the evidence table,
approvals, the records-of-processing extract, the control mapping — and the files that let an
auditor re-verify it offline (every envelope, the request, the signed decision record and the
policy bundle as decided, paths relative to the bundle root)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmgate.engine.packet._controls import control_rows
from slmgate.engine.packet._files import BUNDLE_PREFIX, RECORD_NAME, REQUEST_NAME, bundle_files, evidence_name
from slmgate.engine.packet._render import Attachment
from slmgate.engine.packet._ropa import packet_extract
from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._decision import Decision
from slmgate.engine.request._request import PromotionRequest
from slmgate.evidence import VerifiedEvidence

__all__ = ["bundle_attachments", "packet_attachments", "packet_content"]

_FILES_SHOWN = 8  # the release diff stays on one page
_MEDIA = {".yaml": "application/yaml", ".rego": "text/plain", ".pub": "application/x-pem-file"}


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
                "bounds": {k: v for k, v in bounds.items() if k in ("min", "max")},
            })
    return rows


def _serving(facts: dict[str, Any], verified: Sequence[VerifiedEvidence],
             bundle: PolicyBundle) -> dict[str, Any] | None:
    s = facts["evidence"].get("serving")
    if not s:
        return None
    ev = next((e for e in verified if e.kind == "serving-config"), None)
    slos = bundle.data["gates"].get("serving", {})
    return {
        "device": f"{s.get('device') or '—'} / {s.get('device_name') or '—'}",
        "dtype": s.get("dtype"), "batch_size": s.get("batch_size"),
        "torch_version": ev.statement.predicate.get("software", {}).get("torch_version") if ev else None,
        "latency_ms_p50": s.get("latency_ms_p50"), "latency_ms_p95": s.get("latency_ms_p95"),
        "throughput_per_s": s.get("throughput_per_s"),
        "slo": "; ".join(f"{name} {_gate_text(b)}" for name, b in sorted(slos.items())) or None,
    }


def _files_for(ref_or_kind: str, decision: Decision) -> list[str]:
    """The attached files a finding's or check's ``evidence_ref`` points to."""
    if ref_or_kind == "request":
        return [REQUEST_NAME]
    if ref_or_kind == "policy":
        return [f"{BUNDLE_PREFIX}rego/"]
    results = [r for r in decision.evidence if r.envelope_sha256]
    if ref_or_kind == "evidence":
        return [evidence_name(r.ref) for r in results]
    return [evidence_name(r.ref) for r in results if ref_or_kind in (r.ref, r.kind)]


def _tied(rows: list[dict[str, Any]], decision: Decision,
          approvals: Sequence[dict[str, Any]], roles: set[str]) -> list[dict[str, Any]]:
    """Each finding or check with the attached files it rests on. A per-role approval check
    (``approval.<role>``) rests on that role's approvals only; with none, its note names the
    missing role instead of pointing at another role's envelope."""
    out = []
    for row in rows:
        rule = str(row.get("rule_id") or "")
        role = rule.removeprefix("approval.") if rule.startswith("approval.") else None
        if role in roles:
            refs = sorted({a["ref"] for a in approvals if a["role"] == role})
            files = [evidence_name(ref) for ref in refs]
            note = None if files else f"none: no signed {role} approval was submitted"
        else:
            files, note = _files_for(str(row.get("evidence_ref") or ""), decision), None
        out.append({**row, "evidence_files": files, "evidence_note": note})
    return out


def _approval_roles(decision: Decision, bundle: PolicyBundle) -> set[str]:
    """The roles the decision's tier asks approvals of, and any still needed."""
    tier = bundle.data["tiers"].get("tiers", {}).get(decision.tier) or {}
    return ({str(a["role"]) for a in tier.get("approvals", [])}
            | {str(a["role"]) for a in decision.approvals_needed})


def _approvals(verified: Sequence[VerifiedEvidence], facts: dict[str, Any]) -> list[dict[str, Any]]:
    bound = {(a["signer"], a["role"]): a["request_bound"]
             for a in facts["evidence"].get("approvals", [])}
    rows = []
    for ev in verified:
        if ev.kind != "approval":
            continue
        p = ev.statement.predicate
        for s in ev.signers:
            rows.append({"ref": ev.ref, "signer": s.name, "role": s.role,
                         "approved_at": p.get("approved_at"), "comment": p.get("comment"),
                         "request_bound": bound.get((s.name, s.role), False)})
    return rows


def _release(decision: Decision, verified: Sequence[VerifiedEvidence],
             bundle: PolicyBundle) -> dict[str, Any]:
    classes = bundle.data["tiers"]["change_classes"]
    manifest = next((e for e in verified if e.kind == "weights-manifest"), None)
    files = manifest.statement.predicate.get("resources", []) if manifest else []
    return {
        "change_classes": [
            {"id": c, "description": classes.get(c, {}).get("description", "not a published class"),
             "tier": classes.get(c, {}).get("tier")}
            for c in decision.request["change_classes"]
        ],
        "files": [{"name": f.get("name"), "digest": f"{f.get('algorithm')}:{f.get('digest')}"}
                  for f in files[:_FILES_SHOWN]] if manifest else None,
        "files_total": len(files) if manifest else None,
        "files_source": evidence_name(manifest.ref) if manifest else None,
    }


def training_rows(facts: dict[str, Any], bundle: PolicyBundle) -> dict[str, Any]:
    """The "Training data" section: the verified training-run and one row per dataset and per
    link of its derivative chain (depth 0: named by the run), as the signed cards say, with
    the retention purposes.yaml gives each dataset."""
    training = facts.get("evidence", {}).get("training") or {"run": None, "datasets": []}
    purposes = bundle.data["purposes"]
    declared = {**purposes.get("derivative_flows", {}), **purposes.get("datasets", {})}
    rows = []
    for d in training.get("datasets", []):
        for depth, link in enumerate(d.get("links", [])):
            card = link.get("card") or {}
            name = card.get("dataset") or link.get("named")
            rows.append({
                "dataset": name, "depth": depth, "digest": f"sha256:{link['sha256']}",
                "category": card.get("category"), "origin": card.get("origin"),
                "purpose": card.get("purpose"), "lawful_basis": card.get("lawful_basis"),
                "oldest_record": card.get("oldest_record"), "newest_record": card.get("newest_record"),
                "rows": card.get("rows"), "access_role": card.get("access_role"),
                "retention_days": (declared.get(name) or {}).get("retention_days"),
                "signers": ", ".join(card.get("signers", [])) or None,
                "carded": bool(card),
            })
    run = training.get("run")
    return {"run": None if run is None else {
                "builder": run["builder"], "build_type": run["build_type"],
                "signers": ", ".join(run["signers"]),
                "base_model": (f"{run['base_model']['name']} sha256:{run['base_model']['sha256']}"
                               if run.get("base_model") else None)},
            "datasets": rows}


def packet_content(
    decision: Decision, facts: dict[str, Any], bundle: PolicyBundle,
    verified: Sequence[VerifiedEvidence],
) -> dict[str, Any]:
    """The content dict ``render_packet`` takes, from a decision and what it was decided on."""
    model = decision.request["model"]
    charter = bundle.data["charter"]
    by_ref = {ev.ref: ev for ev in verified}
    fact_request = facts.get("request", {})
    deployment = fact_request.get("deployment")
    provenance = training_rows(facts, bundle)
    # What the signed provenance says was trained on (never the request's own list).
    training = [{"dataset": t["dataset"], "oldest_record": t["oldest_record"], "purpose": t["purpose"]}
                for t in provenance["datasets"] if t["depth"] == 0]
    approvals = _approvals(verified, facts)
    roles = _approval_roles(decision, bundle)
    content = {
        "title": f"Promotion packet — {model['name']} {model['version']}",
        "generated_at": decision.evaluated_at,
        "decision": {
            "id": decision.id, "outcome": decision.outcome, "exit_code": decision.exit_code,
            "tier": decision.tier, "summary": decision.summary(),
            "evaluated_at": decision.evaluated_at, "bundle_digest": decision.bundle_digest,
            "policy_revision": decision.policy_revision,
            "findings": _tied(decision.findings, decision, approvals, roles),
            "checks": _tied(decision.checks, decision, approvals, roles),
            "approvals_needed": decision.approvals_needed,
            "waivers_applied": decision.waivers_applied,
            "waivers_expired": decision.waivers_expired,
        },
        "request": {
            **decision.request, "deployment": deployment,
            "training_data": training,
        },
        "training": provenance,
        "release": _release(decision, verified, bundle),
        "metrics": _metric_rows(decision, facts, bundle),
        "evidence": [
            {
                "ref": r.ref, "predicate_type": r.predicate_type or "—",
                "kind": by_ref[r.ref].kind if r.ref in by_ref else r.kind,
                "signers": list(r.signers), "signed_at": r.issued_at, "verified": r.verified,
                "failure": f"{r.failed_step}: {r.reason}" if not r.verified else None,
                "subject_digest": f"sha256:{r.subject_sha256}" if r.subject_sha256 else None,
                "file": evidence_name(r.ref) if r.envelope_sha256 else None,
                "envelope_sha256": r.envelope_sha256,
            }
            for r in decision.evidence
        ],
        "approvals": approvals,
        "serving": _serving(facts, verified, bundle),
        "charter": {"program": charter["title"], "problem_statement": charter["problem_statement"],
                    "owner": charter["owner"],
                    "human_in_the_loop": charter.get("risk_appetite", {}).get("human_in_the_loop", [])},
        # Every dataset of the signed chains, sources included, with the flows among them.
        "ropa": packet_extract(bundle.data, deployment,
                               [{"dataset": t["dataset"]} for t in provenance["datasets"]]),
    }
    content["controls"] = control_rows(decision, content)
    return content


def bundle_attachments(bundle: PolicyBundle) -> list[Attachment]:
    out = []
    for rel, data in bundle_files(bundle):
        out.append(Attachment(
            BUNDLE_PREFIX + rel, data,
            f"Policy bundle file {rel}, as decided",
            media_type=_MEDIA.get(Path(rel).suffix, "application/octet-stream")))
    return out


def packet_attachments(
    request: PromotionRequest, record_envelope: bytes | None, decision: Decision,
    bundle: PolicyBundle | None = None,
) -> list[Attachment]:
    """Every envelope exactly as submitted, the request, the signed decision record and — with
    ``bundle`` — the policy bundle it was decided under, so ``slmgate packet verify`` can replay."""
    attachments = [
        Attachment(evidence_name(item.ref), item.raw,
                   f"DSSE envelope '{item.ref}' exactly as submitted")
        for item in request.evidence
    ]
    attachments.append(Attachment(REQUEST_NAME, request.raw, "The promotion request as submitted"))
    if record_envelope is not None:
        attachments.append(Attachment(RECORD_NAME, record_envelope,
                                      f"Signed decision record {decision.id}"))
    if bundle is not None:
        attachments += bundle_attachments(bundle)
    return attachments
