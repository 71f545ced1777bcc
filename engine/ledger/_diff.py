"""Where two decision documents disagree: the comparison that ledger replay, what-if and
``packet verify`` share. Kept apart from the ledger's git history so a packet verifier does
not import git to compare two dictionaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Difference", "diff_decisions"]

# Compared as a whole; ``summary`` follows from these, ``policy_revision`` names the policy
# repository's commit, which a bundle laid out from the ledger does not have.
_WHOLE = ("id", "outcome", "exit_code", "tier", "error", "evaluated_at", "bundle_digest",
          "facts_digest", "request", "approvals_needed", "waivers_applied", "waivers_expired")
_KEYED: dict[str, Callable[[dict[str, Any]], str]] = {
    "findings": lambda f: f"{f.get('rule_id')}@{f.get('evidence_ref')}",
    "checks": lambda c: str(c.get("rule_id")),
    "evidence": lambda e: str(e.get("ref")),
}


@dataclass(frozen=True)
class Difference:
    """One place two decisions disagree; ``None`` on one side means absent there."""

    where: str
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return f"{self.where}: recorded {_short(self.recorded)}, replayed {_short(self.replayed)}"

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "recorded": self.recorded, "replayed": self.replayed}


def _short(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, dict) and "rule_id" in value:
        bits = [str(value.get(k)) for k in ("severity", "passed", "message") if k in value]
        return f"[{' | '.join(bits)}]"
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def diff_decisions(recorded: dict[str, Any], replayed: dict[str, Any]) -> list[Difference]:
    """Every disagreement between two decision documents (``Decision.to_json``), findings,
    checks and evidence matched by rule id or ref rather than by position."""
    diffs = [Difference(k, recorded.get(k), replayed.get(k))
             for k in _WHOLE if recorded.get(k) != replayed.get(k)]
    for name, key in _KEYED.items():
        old = {key(x): x for x in recorded.get(name) or []}
        new = {key(x): x for x in replayed.get(name) or []}
        diffs += [Difference(f"{name}[{k}]", old.get(k), new.get(k))
                  for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    return diffs
