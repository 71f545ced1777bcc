"""`slmgate ledger what-if`: every recorded promotion re-evaluated under a changed policy bundle,
each at its own recorded time, reporting which decisions would flip and by which rules.

Evidence verification is reused across decisions (``_verify_cache``); the policy query runs once
per decision. The decisions are spread over worker processes, one per CPU unless ``jobs`` says
otherwise, each compiling the bundle once.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from slmgate.engine.ledger._diff import diff_keyed
from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision
from slmgate.engine.ledger._replay import evaluate_recorded
from slmgate.engine.ledger._verify_cache import CachedVerifier
from slmgate.engine.policy._bundle import PolicyBundle, load_bundle
from slmgate.engine.policy._engines import embedded_engine
from slmgate.engine.policy._evaluate import DecisionEngine

_BLOCKING = ("deny", "review")


def _blocking(decision: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["rule_id"]: {k: f.get(k) for k in ("rule_id", "severity", "message", "evidence_ref")}
            for f in decision.get("findings") or [] if f.get("severity") in _BLOCKING}


@dataclass(frozen=True)
class WhatIfItem:
    """One recorded decision, re-evaluated: ``added``/``removed`` are the blocking findings
    (deny or review) the new bundle raises or no longer raises."""

    seq: int
    decision_id: str
    model: str
    evaluated_at: str
    recorded: str
    new: str
    added: tuple[dict[str, Any], ...] = ()
    removed: tuple[dict[str, Any], ...] = ()
    findings_changed: bool = False
    changed: tuple[str, ...] = ()  # other rules whose check or finding changed
    note: str | None = None

    @property
    def flipped(self) -> bool:
        return self.recorded != self.new

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "decision_id": self.decision_id, "model": self.model,
                "evaluated_at": self.evaluated_at, "recorded": self.recorded, "new": self.new,
                "flipped": self.flipped, "findings_changed": self.findings_changed,
                "added": list(self.added), "removed": list(self.removed),
                "changed": list(self.changed), "note": self.note}


def compare(recorded: RecordedDecision, new: dict[str, Any] | None) -> WhatIfItem:
    old = recorded.decision
    model = old.get("request", {}).get("model", {})
    base: dict[str, Any] = {"seq": recorded.manifest.seq, "decision_id": recorded.decision_id,
            "model": f"{model.get('name')} {model.get('version')}",
            "evaluated_at": str(old.get("evaluated_at")), "recorded": str(old.get("outcome"))}
    if new is None:
        return WhatIfItem(**base, new=base["recorded"],
                          note="the weights binding was refused when recorded; the weights are not "
                               "in the ledger, so this decision is not re-evaluated")
    before, after = _blocking(old), _blocking(new)
    added = tuple(f for rule, f in sorted(after.items()) if before.get(rule) != f)
    removed = tuple(f for rule, f in sorted(before.items()) if rule not in after)
    moved = {f["rule_id"] for f in (*added, *removed)}
    # Only findings and checks name rules: the rest of the decision is not compared.
    changed = tuple(sorted(
        {d.where.split("[", 1)[1].split("@")[0].rstrip("]")
         for name in ("findings", "checks") for d in diff_keyed(old, new, name)} - moved))
    return WhatIfItem(**base, new=str(new.get("outcome")), added=added, removed=removed,
                      findings_changed=bool(changed or moved), changed=changed)


def _weights_refused(decision: dict[str, Any]) -> bool:
    return any(e.get("failed_step") == "weights-binding" for e in decision.get("evidence") or [])


def evaluate_entries(history: LedgerHistory, entries: Sequence[str], bundle: PolicyBundle,
                     policy: DecisionEngine, verifier: CachedVerifier) -> list[WhatIfItem]:
    items = []
    records = history.load_many(entries)
    records.reverse()
    while records:  # each record let go once compared: a chunk's parsed decisions never pile up
        recorded = records.pop()
        if _weights_refused(recorded.decision):
            items.append(compare(recorded, None))
            continue
        items.append(compare(recorded, evaluate_recorded(recorded, bundle, policy, verifier)))
    return items


@dataclass
class WhatIfReport:
    ledger: str
    policies: str
    bundle_digest: str
    items: list[WhatIfItem] = field(default_factory=list)
    seconds: float = 0.0
    verifications: int = 0
    verifications_reused: int = 0
    jobs: int = 1

    @property
    def flips(self) -> list[WhatIfItem]:
        return [i for i in self.items if i.flipped]

    def transitions(self) -> dict[str, int]:
        return dict(Counter(f"{i.recorded} → {i.new}" for i in self.flips).most_common())

    def to_json(self) -> dict[str, Any]:
        rate = len(self.items) / self.seconds if self.seconds else None
        return {"ledger": self.ledger, "policies": self.policies, "bundle_digest": self.bundle_digest,
                "decisions": len(self.items), "flips": len(self.flips),
                "transitions": self.transitions(),
                "changed_without_flip": sum(1 for i in self.items if i.findings_changed and not i.flipped),
                "seconds": round(self.seconds, 3), "decisions_per_second": rate and round(rate, 1),
                "verifications": self.verifications, "verifications_reused": self.verifications_reused,
                "jobs": self.jobs, "items": [i.to_json() for i in self.items]}

    def text(self, limit: int = 100) -> str:
        doc = self.to_json()
        lines = [f"what-if: {doc['decisions']} decision(s) re-evaluated under {self.bundle_digest} "
                 f"({self.policies}) in {self.seconds:.1f} s ({doc['decisions_per_second'] or 0}/s, "
                 f"{self.jobs} job(s)); evidence verifications reused: {self.verifications_reused} "
                 f"of {self.verifications}"]
        moves = ", ".join(f"{k} {v}" for k, v in doc["transitions"].items())
        lines.append(f"  flips: {doc['flips']}" + (f" ({moves})" if moves else ""))
        lines.append(f"  findings changed without a flip: {doc['changed_without_flip']}")
        shown = [i for i in self.items if i.flipped or i.findings_changed or i.note]
        for item in shown[:limit]:
            tag = "FLIP" if item.flipped else ("NOTE" if item.note else "CHANGED")
            lines.append(f"  {tag} #{item.seq} {item.decision_id} {item.model} at {item.evaluated_at}: "
                         f"{item.recorded} → {item.new}")
            lines += [f"      + {f['rule_id']} ({f['severity']}): {f.get('message', '')}" for f in item.added]
            lines += [f"      - {f['rule_id']} ({f['severity']})" for f in item.removed]
            if item.changed:
                lines.append(f"      ~ {', '.join(item.changed)}")
            if item.note:
                lines.append(f"      {item.note}")
        if len(shown) > limit:
            lines.append(f"  ... {len(shown) - limit} more (use --format json for all)")
        return "\n".join(lines)


_worker: dict[str, Any] = {}


def _init_worker(ledger: str, policies: str) -> None:
    bundle = load_bundle(Path(policies))
    history = LedgerHistory(Path(ledger))
    history.tree  # noqa: B018 - one listing of the commit, instead of one per chunk
    _worker.update(history=history, bundle=bundle,
                   policy=embedded_engine(bundle), verifier=CachedVerifier())


def _run_chunk(entries: list[str]) -> tuple[list[WhatIfItem], int, int]:
    verifier: CachedVerifier = _worker["verifier"]
    before = (verifier.stats.hits, verifier.stats.misses)
    items = evaluate_entries(_worker["history"], entries, _worker["bundle"], _worker["policy"], verifier)
    return items, verifier.stats.hits - before[0], verifier.stats.misses - before[1]


def what_if(ledger: Path, policies: Path, *, jobs: int | None = None, chunk_size: int = 200,
            progress: Callable[[int, int], None] | None = None) -> WhatIfReport:
    """Re-evaluate every decision of ``ledger`` under the bundle at ``policies``: with ``jobs``
    worker processes, one per CPU when ``None``; in this process alone when ``jobs`` is 1 or
    the ledger holds one chunk (``chunk_size`` decisions) or less, where starting a worker
    (~0.5 s: imports, the bundle compiled) would cost more than it saves."""
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    started = time.perf_counter()
    bundle = load_bundle(policies)
    with LedgerHistory(ledger) as history:
        # Every file of the commit is read: one listing of it costs ~20 µs a decision, against
        # ~1 ms a decision for listing each chunk's paths (``ls-tree`` with paths).
        history.tree  # noqa: B018
        entries = history.entry_paths
        report = WhatIfReport(str(ledger), str(policies), bundle.digest)
        chunks = [entries[i:i + chunk_size] for i in range(0, len(entries), chunk_size)]
        if jobs <= 1 or len(chunks) < 2:
            policy, verifier = embedded_engine(bundle), CachedVerifier()
            for chunk in chunks:
                report.items += evaluate_entries(history, chunk, bundle, policy, verifier)
                if progress:
                    progress(len(report.items), len(entries))
            report.verifications_reused = verifier.stats.hits
            report.verifications = verifier.stats.hits + verifier.stats.misses
        else:
            workers = report.jobs = min(jobs, len(chunks), os.cpu_count() or 1)
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                     initargs=(str(ledger), str(policies))) as pool:
                for items, hits, misses in pool.map(_run_chunk, chunks):
                    report.items += items
                    report.verifications_reused += hits
                    report.verifications += hits + misses
                    if progress:
                        progress(len(report.items), len(entries))
    report.seconds = time.perf_counter() - started
    return report
