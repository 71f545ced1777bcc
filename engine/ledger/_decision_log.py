"""`slmgate ledger log`: the decision history as decision-log records (in the manner of OPA's
decision logs), filtered by model, outcome and date, with fields masked where the bundle each
decision was made under says so.

Masking is read from that bundle's ``charter.yaml``::

    decision_log:
      mask: [request.requested_by, findings.message]

A path names a field of the log record; through a list it applies to every element. A masked
value becomes ``"<masked>"`` and the record lists what was masked. A path that names no field
is refused rather than ignored, so a typo never lets a field through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml

from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision
from slmgate.engine.ledger._index import indexed_decisions
from slmgate.engine.ledger._store import LedgerError
from slmgate.engine.policy._decision import DECISION_LOG_FIELDS
from slmgate.evidence import parse_time
from slmgate.evidence.errors import InputError

MASKED = "<masked>"
OUTCOMES = ("approve", "review", "deny")

FIELDS = DECISION_LOG_FIELDS  # defined beside the decision it logs


def log_record(recorded: RecordedDecision, commit: str | None) -> dict[str, Any]:
    d = recorded.decision
    request = d.get("request") or {}
    return {
        "decision_id": recorded.decision_id, "seq": recorded.manifest.seq,
        "timestamp": d.get("evaluated_at"), "recorded_at": recorded.manifest.recorded_at,
        "commit": commit, "outcome": d.get("outcome"), "exit_code": d.get("exit_code"),
        "tier": d.get("tier"), "summary": d.get("summary"),
        "model": dict(request.get("model") or {}),
        "request": {k: request.get(k) for k in
                    ("id", "digest", "summary", "requested_by", "change_classes", "changes")},
        "bundle": {"digest": recorded.manifest.bundle_digest,
                   "revision": recorded.manifest.policy_revision},
        "findings": [{k: f.get(k) for k in ("rule_id", "severity", "message", "evidence_ref")}
                     for f in d.get("findings") or [] if f.get("severity") != "info"],
        "approvals_needed": d.get("approvals_needed") or [],
        "evidence": [{k: e.get(k) for k in ("ref", "kind", "verified", "envelope_sha256", "signers",
                                             "failed_step", "reason")}
                     for e in d.get("evidence") or []],
    }


def _mask_at(node: Any, parts: list[str]) -> bool:
    if isinstance(node, list):
        return any([_mask_at(item, parts) for item in node])
    if not isinstance(node, dict) or parts[0] not in node:
        return False
    if len(parts) == 1:
        node[parts[0]] = MASKED
        return True
    return _mask_at(node[parts[0]], parts[1:])


def apply_mask(record: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """``record`` with every field named by ``paths`` masked (paths must be in ``FIELDS``)."""
    out = json.loads(json.dumps(record))
    masked = []
    for path in paths:
        if path not in FIELDS:
            raise InputError(f"decision_log.mask: unknown field {path!r}",
                             advice=f"maskable fields: {', '.join(sorted(FIELDS))}")
        _mask_at(out, path.split("."))
        masked.append(path)
    if masked:
        out["masked"] = sorted(masked)
    return out


def bundle_mask(history: LedgerHistory, digest: str) -> list[str]:
    """``decision_log.mask`` of a stored bundle's charter (empty when it sets none)."""
    prefix = f"bundles/{digest.removeprefix('sha256:')}/charter.yaml"
    try:
        charter = yaml.safe_load(history.read(prefix)) or {}
    except yaml.YAMLError as exc:
        raise LedgerError(f"{prefix}: not YAML ({exc})", file=str(history.path)) from exc
    mask = (charter.get("decision_log") or {}).get("mask") or []
    if not isinstance(mask, list) or not all(isinstance(p, str) for p in mask):
        raise LedgerError(f"{prefix}: decision_log.mask must be a list of field paths",
                          file=str(history.path))
    try:
        apply_mask({}, mask)
    except InputError as exc:
        raise LedgerError(f"{prefix}: {exc.detail}", file=str(history.path), advice=exc.advice) from exc
    return mask


def parse_bound(text: str, *, end: bool, what: str) -> datetime:
    """A date (the whole day, UTC) or an RFC 3339 time; ``end`` makes a date its day's end."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            return parse_time(text, what=what)
        except ValueError as exc:
            raise InputError(f"{what}: expected a date (YYYY-MM-DD) or an RFC 3339 time, "
                             f"got {text!r}") from exc
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) - timedelta(seconds=1) if end else start


_SEQ_FORMAT = "--format=%H%x1f%(trailers:key=Slmgate-Seq,valueonly)%x1e"


def _seq_trailers(out: bytes) -> dict[int, str]:
    found = {}
    for item in out.decode().split("\x1e"):
        sha, _, seq = item.strip().partition("\x1f")
        if seq.strip().isdigit():
            found[int(seq.strip())] = sha
    return found


class _CommitOf:
    """The commit that recorded each sequence number. In a ledger's linear history the commit
    of entry k is the k-th after the first (``rev-list --first-parent``: a walk of commit ids
    only, quick with the commit-graph ``Ledger.pack`` keeps); the Slmgate-Seq trailers of the
    commits asked for are checked, 500 at a time, and when one disagrees (a history that is not
    linear) every commit's trailer is read instead."""

    def __init__(self, history: LedgerHistory) -> None:
        self.history = history
        self.line: list[str] | None = None
        self.known: dict[int, str] = {}
        self.by_trailer: dict[int, str] | None = None

    def __call__(self, seq: int) -> str | None:
        if self.by_trailer is not None:
            return self.by_trailer.get(seq)
        if seq not in self.known:
            if self.line is None:
                self.line = self.history.git("rev-list", "--first-parent", "--reverse",
                                             self.history.commit).decode().split()
            wanted = {k: self.line[k] for k in range(seq, min(seq + 500, len(self.line)))}
            said = _seq_trailers(self.history.git("log", "--no-walk=unsorted", _SEQ_FORMAT,
                                                  *wanted.values())) if wanted else {}
            if seq not in wanted or any(said.get(k) != c for k, c in wanted.items()):
                self.by_trailer = _seq_trailers(self.history.git("log", _SEQ_FORMAT,
                                                                 self.history.commit))
                return self.by_trailer.get(seq)
            self.known.update(wanted)
        return self.known[seq]


def decision_log(history: LedgerHistory, *, model: str | None = None,
                 outcomes: Iterable[str] = (), since: datetime | None = None,
                 until: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Log records of the decisions that pass the filters, oldest first, masked."""
    wanted = set(outcomes)
    commit_of = _CommitOf(history)
    masks: dict[str, list[str]] = {}
    # the index (``_index``) selects in SQL and every row it gives is checked against git; the
    # filters are applied again below to what was read, so the index only ever saves work
    selected = indexed_decisions(history, model=model, outcomes=wanted, since=since, until=until)
    for recorded in selected:
        d = recorded.decision
        if model and (d.get("request") or {}).get("model", {}).get("name") != model:
            continue
        if wanted and d.get("outcome") not in wanted:
            continue
        try:
            when = parse_time(d.get("evaluated_at"), what="evaluated_at")
        except ValueError as exc:
            raise LedgerError(f"decision {recorded.decision_id}: {exc}") from exc
        if (since and when < since) or (until and when > until):
            continue
        digest = recorded.manifest.bundle_digest
        if digest not in masks:
            masks[digest] = bundle_mask(history, digest)
        yield apply_mask(log_record(recorded, commit_of(recorded.manifest.seq)), masks[digest])


def _field(record: dict[str, Any], *path: str) -> Any:
    node: Any = record
    for part in path:
        node = node.get(part) if isinstance(node, dict) else MASKED
    return node


def log_line(record: dict[str, Any]) -> str:
    findings = record.get("findings")
    blocking = [f["rule_id"] for f in findings if isinstance(f, dict) and
                f.get("severity") in ("deny", "review")] if isinstance(findings, list) else []
    requested_by = _field(record, "request", "requested_by")
    return (f"{record['timestamp']}  #{record['seq']:<5} {record['decision_id']}  "
            f"{str(record['outcome']).upper():<7} {_field(record, 'model', 'name')} "
            f"{_field(record, 'model', 'version')}  "
            f"tier {record['tier']}  by {requested_by}"
            + (f"  [{', '.join(blocking[:4])}{' …' if len(blocking) > 4 else ''}]" if blocking else ""))
