"""Signed ledger checkpoints: a cut-back ledger is caught.

The hash chain shows any decision deleted or rewritten *inside* the history, but not the newest
decisions cut off the end (``git reset --hard HEAD~1`` leaves a chain that verifies). As
transparency logs publish signed tree heads that witnesses keep (Rekor, sigsum), the gate signs a
checkpoint — the number of decisions, the sha256 of the newest chain entry, the time — and CI
keeps it outside the ledger's reach. ``ledger verify --checkpoint`` then fails when the ledger
holds fewer decisions than a checkpoint saw, or another entry at that position.

A checkpoint is a DSSE envelope (payload type in-toto) over an in-toto Statement v1 whose subject
is the head entry and whose predicate type is ``CHECKPOINT_TYPE`` — no evidence kind, so
``verify_envelope`` never accepts it as evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slmgate.engine.ledger._history import LedgerHistory
from slmgate.engine.ledger._verify import GateKeys, Problem, VerifyReport, entry_digest_at
from slmgate.evidence import Envelope, SigningKey, canonical_json, format_time, parse_time, sign_envelope
from slmgate.evidence.errors import EvidenceInvalid, InputError

__all__ = ["CHECKPOINT_TYPE", "Checkpoint", "check_checkpoints", "ledger_checkpoint", "read_checkpoint"]

CHECKPOINT_TYPE = "https://slmgate.dev/ledger-checkpoint/v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


@dataclass(frozen=True)
class Checkpoint:
    """What one signed checkpoint says: ``decisions`` entries, the last one hashing to
    ``head_entry`` (``sha256:<hex>``), at ``at``."""

    decisions: int
    head_entry: str | None
    head_commit: str
    at: datetime
    source: str

    def statement(self) -> bytes:
        subject = ([{"name": f"ledger-entry-{self.decisions}",
                     "digest": {"sha256": self.head_entry.removeprefix("sha256:")}}]
                   if self.head_entry else [])
        return canonical_json({
            "_type": STATEMENT_TYPE, "subject": subject, "predicateType": CHECKPOINT_TYPE,
            "predicate": {"decisions": self.decisions, "head_entry": self.head_entry,
                          "head_commit": self.head_commit, "checkpoint_at": format_time(self.at)},
        })


def ledger_checkpoint(path: Path, key: SigningKey, now: datetime, *, decisions: int,
                      head_entry: str | None) -> bytes:
    """The signed checkpoint envelope of the ledger at ``path`` as of HEAD, whose chain the
    caller has verified (or just written) to hold ``decisions`` entries ending in ``head_entry``."""
    with LedgerHistory(path) as history:
        entries = history.chain_paths
        if len(entries) != decisions:
            raise InputError(f"the ledger holds {len(entries)} chain entries, expected {decisions}",
                             file=str(path), advice="a decision was recorded meanwhile; run again")
        commit = history.commit
    checkpoint = Checkpoint(decisions, head_entry, commit, now, str(path))
    return sign_envelope(checkpoint.statement(), [key]).to_json()


def read_checkpoint(path: Path, gates: GateKeys) -> Checkpoint:
    """Parse and verify one checkpoint file. Unreadable or malformed: ``InputError`` (exit 2);
    not signed by a gate key valid at its time: ``EvidenceInvalid`` (exit 4)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the checkpoint ({exc.strerror})", file=str(path)) from exc
    try:
        envelope = Envelope.from_json(raw)
        doc: Any = json.loads(envelope.payload)
        predicate = doc["predicate"]
        if doc.get("predicateType") != CHECKPOINT_TYPE or doc.get("_type") != STATEMENT_TYPE:
            raise ValueError(f"predicateType {doc.get('predicateType')!r}, expected {CHECKPOINT_TYPE!r}")
        decisions = predicate["decisions"]
        head = predicate["head_entry"]
        if not isinstance(decisions, int) or isinstance(decisions, bool) or decisions < 0:
            raise ValueError("decisions must be a whole number")
        if (head is None) != (decisions == 0) or (head is not None and not (
                isinstance(head, str) and head.startswith("sha256:") and len(head) == 71)):
            raise ValueError("head_entry must be sha256:<64 hex> (null only with 0 decisions)")
        checkpoint = Checkpoint(decisions, head, str(predicate["head_commit"]),
                                parse_time(predicate["checkpoint_at"], what="checkpoint_at"), str(path))
    except (EvidenceInvalid, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a slmgate ledger checkpoint ({exc})", file=str(path)) from exc
    if not gates.signed(envelope, checkpoint.at):
        raise EvidenceInvalid(f"{path}: the checkpoint is not signed by a trusted gate key valid "
                              f"at {format_time(checkpoint.at)}")
    return checkpoint


def check_checkpoints(report: VerifyReport, checkpoints: list[Checkpoint]) -> None:
    """Add a problem to ``report`` for each checkpoint the ledger no longer honours: fewer
    decisions than it saw, or another entry at its head position. An entry before the one a
    ``verify --from`` started at is read from the ledger's HEAD."""
    for cp in checkpoints:
        where = f"checkpoint {cp.source} ({format_time(cp.at)})"
        if report.decisions < cp.decisions:
            report.problems.append(Problem(report.head, None, (
                f"{where} saw {cp.decisions} decision(s), the ledger holds {report.decisions}: "
                "decisions were cut from the end of the ledger")))
            continue
        if not cp.decisions:
            report.notes.append(f"{where}: 0 decisions")
            continue
        found = report.entry_at(cp.decisions)
        if found is None:
            found = entry_digest_at(Path(report.ledger), cp.decisions)
        if found != cp.head_entry:
            report.problems.append(Problem(report.head, cp.decisions, (
                f"{where} names entry {cp.decisions} {cp.head_entry}, the ledger has "
                f"{found} there: history was rewritten")))
        else:
            report.notes.append(f"{where}: {cp.decisions} decision(s), head entry as signed")


def checkpoint_of_entry(path: Path, commit: str, seq: int, key: SigningKey, now: datetime) -> bytes:
    """The signed checkpoint of the ledger as of ``commit``, which the gate has just written as
    chain entry ``seq`` (``promote --checkpoint-out``): concurrent later commits do not matter."""
    from slmgate.engine.ledger._store import sha256_hex

    with LedgerHistory(path, commit=commit) as history:
        entries = history.chain_paths
        if len(entries) != seq:
            raise InputError(f"commit {commit[:12]} holds {len(entries)} chain entries, expected {seq}",
                             file=str(path))
        head = f"sha256:{sha256_hex(history.read(entries[-1]))}"
    return sign_envelope(Checkpoint(seq, head, commit, now, str(path)).statement(), [key]).to_json()
