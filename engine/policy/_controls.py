"""The control mapping: which framework controls a promotion's checks evidence — SOC 2 CC8.1,
ISO/IEC 42001 A.6.2.4–A.6.2.6 and EU AI Act Annex IV points 2, 3, 4 and 6.

One table, the single source of truth for both readers of it: the packet prints a row per control
with the sections that evidence it (``engine.packet._controls``), and the ledger's OSCAL export
names, for each finding, the controls its rule evidences and lists every control of the table as
reviewed (``engine.ledger._oscal``). Both find a rule's controls with :func:`controls_for`, so they
never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CONTROLS", "Control", "controls_for", "oscal_token"]


def oscal_token(label: str) -> str:
    """A label as an OSCAL token (lowercase; spaces and ``/`` as ``-``; ``(n)`` as ``.n``):
    ``"CC8.1"`` -> ``"cc8.1"``, ``"Annex IV(2)"`` -> ``"annex-iv.2"``,
    ``"ISO/IEC 42001"`` -> ``"iso-iec-42001"``."""
    return re.sub(r"[ /]+", "-", re.sub(r"\((\w+)\)", r".\1", label)).lower()


@dataclass(frozen=True)
class Control:
    """One aspect of a framework control. A control may have several aspects (SOC 2 CC8.1:
    authorised, tested, approved, implemented as approved), each evidenced by its own checks."""

    framework: str
    control: str  # as printed: "CC8.1", "A.6.2.4", "Annex IV(2)"
    title: str
    requirement: str
    sections: tuple[str, ...]  # anchor ids of the packet sections that show the evidence
    rules: tuple[str, ...] = ()  # rule ids, or prefixes ending in "."
    needs: tuple[str, ...] = ()  # predicate kinds that must have verified
    approved: bool = False  # the decision itself must be an approval

    @property
    def control_id(self) -> str:
        """The control's OSCAL control-id (``oscal_token`` of the printed label)."""
        return oscal_token(self.control)

    @property
    def framework_id(self) -> str:
        return oscal_token(self.framework)

    def covers(self, rule_id: str) -> bool:
        """Whether a check or finding of ``rule_id`` evidences this control."""
        return any(rule_id.startswith(r) if r.endswith(".") else rule_id == r for r in self.rules)


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


def controls_for(rule_id: str) -> tuple[Control, ...]:
    """The aspects of every control a check or finding of ``rule_id`` evidences, in table order."""
    return tuple(c for c in CONTROLS if c.covers(rule_id))
