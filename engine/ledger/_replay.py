"""`slmgate ledger replay`: re-evaluate one recorded decision from what the ledger kept — the
request and evidence bytes, the stored policy bundle, the recorded evaluation time — and show
that it gives the same decision, or exactly where it differs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slmgate.engine.ledger._diff import Difference, diff_decisions
from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision
from slmgate.engine.ledger._index import resolve_decision
from slmgate.engine.ledger._store import LedgerError
from slmgate.engine.policy._bundle import PolicyBundle, load_bundle
from slmgate.engine.policy._engines import embedded_engine
from slmgate.engine.policy._evaluate import DecisionEngine, EnvelopeVerifier, evaluate_promotion
from slmgate.evidence import parse_time, verify_envelope


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
