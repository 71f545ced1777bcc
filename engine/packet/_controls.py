"""The packet's control mapping: SOC 2 CC8.1, ISO/IEC 42001 A.6.2.4–A.6.2.6 and EU AI Act Annex IV
points 2, 3, 4 and 6, each row pointing at the packet sections that evidence it and stating, from
the decision's own checks and verified evidence, whether this promotion evidences it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slmgate.engine.policy._decision import Decision

__all__ = ["SECTIONS", "control_rows"]

# Anchor ids of the packet template's sections, with their headings.
SECTIONS: dict[str, str] = {
    "cover": "Decision",
    "release-diff": "Release diff",
    "findings": "Findings and checks",
    "evidence": "Evidence",
    "approvals": "Approvals",
    "serving": "Serving configuration",
    "processing": "Records of processing",
    "attachments": "Attached files",
}


@dataclass(frozen=True)
class Control:
    framework: str
    control: str
    title: str
    requirement: str
    sections: tuple[str, ...]
    rules: tuple[str, ...] = ()  # rule ids, or prefixes ending in "."
    needs: tuple[str, ...] = ()  # predicate kinds that must have verified
    approved: bool = False  # the decision itself must be an approval


CONTROLS: tuple[Control, ...] = (
    Control("SOC 2", "CC8.1", "Change authorised",
            "The change is requested with its change classes and routed to its published tier",
            ("cover", "release-diff"), rules=("request.change_classes",)),
    Control("SOC 2", "CC8.1", "Change tested",
            "Eval gates (regression, stress, policy) and serving SLOs run on the candidate by "
            "signed producers", ("release-diff", "findings", "evidence"),
            rules=("gate.", "slo."), needs=("eval-result", "serving-config")),
    Control("SOC 2", "CC8.1", "Change approved",
            "Approved on the CAB's pre-approved tier or by every approver the tier requires",
            ("cover", "approvals"), rules=("approval.",), approved=True),
    Control("SOC 2", "CC8.1", "Change implemented as approved",
            "The deployed weights are the signed ones, with their measured serving configuration "
            "and a rollback plan where the tier asks", ("evidence", "serving"),
            rules=("evidence.present.", "rollback."), needs=("weights-manifest", "serving-config")),
    Control("ISO/IEC 42001", "A.6.2.4", "AI system verification and validation",
            "Verification and validation against documented criteria before deployment",
            ("release-diff", "findings", "evidence"), rules=("gate.", "evidence.eval."),
            needs=("eval-result",)),
    Control("ISO/IEC 42001", "A.6.2.5", "AI system deployment",
            "Deployment requirements met first: purpose, residency, subprocessors, approvals",
            ("cover", "release-diff", "approvals", "processing"),
            rules=("purpose.", "residency.", "approval."), approved=True),
    Control("ISO/IEC 42001", "A.6.2.6", "AI system operation and monitoring",
            "Operating conditions measured and within SLOs; rollback owned and drilled",
            ("serving", "release-diff"), rules=("slo.", "rollback."), needs=("serving-config",)),
    Control("EU AI Act", "Annex IV(2)", "Elements of the system and its development",
            "Signed weights, training datasets and their purposes, validation and testing",
            ("release-diff", "evidence", "processing"),
            rules=("purpose.training_data", "purpose.dataset.", "evidence.present.weights-manifest"),
            needs=("weights-manifest", "eval-result")),
    Control("EU AI Act", "Annex IV(3)", "Monitoring, functioning and control",
            "Accuracy per layer, human-oversight measures, behaviour on the serving device",
            ("release-diff", "serving", "cover"), rules=("gate.policy.", "slo."),
            needs=("eval-result", "serving-config")),
    Control("EU AI Act", "Annex IV(4)", "Appropriateness of the performance metrics",
            "The metrics and thresholds used per eval layer, against the baseline",
            ("release-diff", "findings"), rules=("gate.",), needs=("eval-result",)),
    Control("EU AI Act", "Annex IV(6)", "Relevant changes through the lifecycle",
            "What this release changes: change classes, change lines, weights files",
            ("release-diff",), rules=("request.change_classes",)),
)


def _matches(rule_id: str, rules: tuple[str, ...]) -> bool:
    return any(rule_id.startswith(r) if r.endswith(".") else rule_id == r for r in rules)


def _listed(items: list[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _status(control: Control, decision: Decision, verified_kinds: set[str]) -> tuple[str, str]:
    waived = {w["rule_id"] for w in decision.waivers_applied}
    matched = [c for c in decision.checks if _matches(c["rule_id"], control.rules)]
    failing = sorted(c["rule_id"] for c in matched if not c["passed"] and c["rule_id"] not in waived)
    gaps = []
    if failing:
        gaps.append(f"failed: {_listed(failing)}")
    missing = [k for k in control.needs if k not in verified_kinds]
    if missing:
        gaps.append(f"no verified {_listed(missing)}")
    if control.approved and decision.outcome != "approve":
        gaps.append(f"the decision is {decision.outcome}")
    if gaps:
        return "gap", "; ".join(gaps)
    if control.approved and not matched:
        return "evidenced", f"approved on the {decision.tier} tier, which needs no named approver"
    if control.rules and not matched:
        return "not checked", "no check of this promotion covers it"
    under_waiver = sorted(c["rule_id"] for c in matched if c["rule_id"] in waived)
    note = f"{len(matched)} check(s) satisfied" if matched else "evidenced by the sections named"
    if under_waiver:
        note += f", {_listed(under_waiver)} under waiver"
    return "evidenced", note


def control_rows(decision: Decision, content: Mapping[str, Any]) -> list[dict[str, Any]]:
    kinds = {e["kind"] for e in content.get("evidence") or [] if e.get("verified") and e.get("kind")}
    rows = []
    for c in CONTROLS:
        status, note = _status(c, decision, kinds)
        rows.append({
            "framework": c.framework, "control": c.control, "title": c.title,
            "requirement": c.requirement, "status": status, "note": note,
            "sections": [{"id": s, "title": SECTIONS[s]} for s in c.sections],
        })
    return rows
