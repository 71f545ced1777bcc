"""The packet's control table: a row per control of the mapping (``engine.policy._controls``, the
table the OSCAL export reads too), each pointing at the packet sections that evidence it and
stating, from the decision's own checks and verified evidence, whether this promotion evidences it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slmgate.engine.policy._controls import CONTROLS, Control
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


def _listed(items: list[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _status(control: Control, decision: Decision, verified_kinds: set[str]) -> tuple[str, str]:
    waived = {w["rule_id"] for w in decision.waivers_applied}
    matched = [c for c in decision.checks if control.covers(c["rule_id"])]
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
