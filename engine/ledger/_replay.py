"""`slmgate ledger replay`: re-evaluate one recorded decision from what the ledger kept — the
request and evidence bytes, the stored policy bundle, the recorded evaluation time — and show
that it gives the same decision, or exactly where it differs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision
from slmgate.engine.ledger._index import resolve_decision
from slmgate.engine.ledger._store import LedgerError
from slmgate.engine.policy._bundle import PolicyBundle, load_bundle
from slmgate.engine.policy._engines import embedded_engine
from slmgate.engine.policy._evaluate import DecisionEngine, EnvelopeVerifier, evaluate_promotion
from slmgate.evidence import parse_time, verify_envelope

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


@dataclass(frozen=True)
class ReplayResult:
    decision_id: str
    recorded: dict[str, Any]
    replayed: dict[str, Any]
    policy_revision: str | None
    differences: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "same": self.same,
                "recorded_outcome": self.recorded.get("outcome"),
                "replayed_outcome": self.replayed.get("outcome"),
                "evaluated_at": self.recorded.get("evaluated_at"),
                "bundle_digest": self.recorded.get("bundle_digest"),
                "policy_revision": self.policy_revision,
                "differences": [d.to_json() for d in self.differences]}

    def text(self) -> str:
        r = self.recorded
        head = (f"{'SAME' if self.same else 'DIFFERS'}: {self.decision_id} "
                f"{r.get('outcome')} -> {self.replayed.get('outcome')} "
                f"(evaluated at {r.get('evaluated_at')} under {r.get('bundle_digest')}, "
                f"revision {self.policy_revision or 'none'})")
        if self.same:
            n = len(r.get("checks") or [])
            return f"{head}\n  outcome, tier, {n} checks, findings and evidence results all reproduced"
        return "\n".join([head, *(f"  {d}" for d in self.differences)])


class BundleCache:
    """Stored bundles loaded and compiled once per digest."""

    def __init__(self, history: LedgerHistory) -> None:
        self.history = history
        self._loaded: dict[str, tuple[PolicyBundle, DecisionEngine]] = {}

    def get(self, digest: str) -> tuple[PolicyBundle, DecisionEngine]:
        if digest not in self._loaded:
            bundle = load_bundle(self.history.bundle_dir(digest))
            if bundle.digest != digest:
                raise LedgerError(f"the stored bundle loads as {bundle.digest}, not {digest}",
                                  file=str(self.history.path), advice="run `slmgate ledger verify`")
            self._loaded[digest] = (bundle, embedded_engine(bundle))
        return self._loaded[digest]


def evaluate_recorded(recorded: RecordedDecision, bundle: PolicyBundle,
                      policy: DecisionEngine, verify: EnvelopeVerifier = verify_envelope,
                      ) -> dict[str, Any]:
    """The decision ``bundle`` gives for a recorded promotion, at its recorded time (the weights
    are not re-hashed: only their signed manifest remains)."""
    evaluated_at = recorded.decision.get("evaluated_at")
    try:
        now = parse_time(evaluated_at, what="evaluated_at")
    except ValueError as exc:
        raise LedgerError(f"decision {recorded.decision_id}: {exc}") from exc
    result = evaluate_promotion(recorded.promotion_request(), bundle, policy, now=now,
                                bind_weights=False, verify=verify)
    return result.decision.to_json()


def replay(history: LedgerHistory, decision_id: str, cache: BundleCache | None = None) -> ReplayResult:
    """Replay one decision (by id or unique prefix) under the bundle it was decided under."""
    recorded = history.load(resolve_decision(history, decision_id))
    bundle, policy = (cache or BundleCache(history)).get(recorded.manifest.bundle_digest)
    replayed = evaluate_recorded(recorded, bundle, policy)
    return ReplayResult(recorded.decision_id, recorded.decision, replayed,
                        recorded.manifest.policy_revision,
                        diff_decisions(recorded.decision, replayed))
