"""Where two decision documents disagree: the comparison that ledger replay, what-if and
``packet verify`` share. Kept apart from the ledger's git history so a packet verifier does
not import git to compare two dictionaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Difference", "diff_decisions", "diff_keyed"]

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
    for name in _KEYED:
        diffs += diff_keyed(recorded, replayed, name)
    return diffs


def diff_keyed(recorded: dict[str, Any], replayed: dict[str, Any], name: str) -> list[Difference]:
    """The disagreements in one list of two decisions, ``findings``, ``checks`` or ``evidence``,
    its rows matched by rule id or ref (``diff_decisions`` is all of them and the rest)."""
    rows_old, rows_new = recorded.get(name) or [], replayed.get(name) or []
    if rows_old == rows_new:  # the common case of a replay, without keying either side
        return []
    key = _KEYED[name]
    old = {key(x): x for x in rows_old}
    new = {key(x): x for x in rows_new}
    return [Difference(f"{name}[{k}]", old.get(k), new.get(k))
            for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
