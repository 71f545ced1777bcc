"""`slmgate ledger verify`: every commit of a ledger checked against a root of trust that the
caller supplies (never one read from the ledger itself)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from slmgate.engine.ledger._attestation import (
    ATTESTATION_KINDS,
    ATTESTATION_SUFFIX,
    AttestationManifest,
    attestation_entry_path,
    attestation_path,
)
from slmgate.engine.ledger._history import LedgerHistory, record_decision
from slmgate.engine.ledger._store import (
    MARKER,
    MARKER_TEXT,
    EntryManifest,
    LedgerCorrupted,
    LedgerError,
    bundle_prefix,
    entry_path,
    entry_payload,
    evidence_path,
    files_digest,
    record_path,
    request_path,
    sha256_hex,
)
from slmgate.evidence import Envelope, PublicKey, Statement, parse_time
from slmgate.evidence.errors import EvidenceInvalid, InputError

_TRAILER = re.compile(r"^Slmgate-(Seq|Entry): (\S+)$", re.MULTILINE)
_EVIDENCE = re.compile(r"^evidence/sha256/[0-9a-f]{2}/([0-9a-f]{64})\.dsse\.json$")


@dataclass(frozen=True)
class GateKeys:
    """The keys allowed to sign decision records and chain entries, with their validity windows
    when they come from a trust policy."""

    keys: tuple[tuple[PublicKey, datetime | None, datetime | None], ...]

    @classmethod
    def from_public_keys(cls, paths: Iterable[Path]) -> GateKeys:
        return cls(tuple((PublicKey.load(p), None, None) for p in paths))

    @classmethod
    def from_trust_file(cls, path: Path) -> GateKeys:
        """The identities of ``trust.yaml`` that may sign decision records and are not revoked."""
        from slmgate.engine.policy._bundle import load_trust_policy

        trust = load_trust_policy(path)
        gates = tuple((i.key, i.valid_from, i.valid_until) for i in trust.identities
                      if "decision-record" in i.may_sign and i.key.keyid not in trust.revoked_keyids)
        if not gates:
            raise InputError("no identity may sign decision-record", file=str(path),
                             advice="the trust policy must name the gate's key")
        return cls(gates)

    def signed(self, envelope: Envelope, at: datetime | None) -> bool:
        """At least one valid signature by a gate key valid at ``at``."""
        valid = [k for k, start, end in self.keys
                 if at is None or ((start is None or at >= start) and (end is None or at <= end))]
        return bool(envelope.keys_that_signed(valid))


@dataclass(frozen=True)
class Problem:
    commit: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"commit {self.commit[:12]}" + (f" (decision {self.seq})" if self.seq else "")
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    ledger: str
    head: str
    decisions: int = 0
    head_entry: str | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)  # sha256:<hex> of each chain entry, in order

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "ok": self.ok, "head": self.head, "decisions": self.decisions,
                "head_entry": self.head_entry,
                "first_bad_commit": self.problems[0].commit if self.problems else None,
                "problems": [{"commit": p.commit, "seq": p.seq, "message": p.message}
                             for p in self.problems], "notes": self.notes}


@dataclass(frozen=True)
class _Commit:
    sha: str
    parents: tuple[str, ...]
    message: str
    changes: tuple[tuple[str, str, str], ...]  # (status, path, new blob)


def _history(history: LedgerHistory) -> list[_Commit]:
    revs = [line.split() for line in
            history.git("rev-list", "--reverse", "--parents", history.commit).decode().splitlines()]
    log = history.git("log", "--format=%H%x1f%B%x1e", history.commit).decode()
    messages = dict(m.strip().split("\x1f", 1) for m in log.split("\x1e") if "\x1f" in m)
    diffs = history.git("diff-tree", "--stdin", "-r", "-z", "--no-renames", "--root",
                        feed="\n".join(r[0] for r in revs) + "\n").decode()
    changes: dict[str, list[tuple[str, str, str]]] = {}
    tokens, current, i = diffs.split("\0"), "", 0
    while i < len(tokens):
        token = tokens[i].strip()
        if token.startswith(":"):
            meta = token.split()
            changes.setdefault(current, []).append((meta[4], tokens[i + 1], meta[3]))
            i += 2
            continue
        if token:
            current = token
        i += 1
    return [_Commit(r[0], tuple(r[1:]), messages.get(r[0], "").strip(), tuple(changes.get(r[0], [])))
            for r in revs]


class _Verifier:
    def __init__(self, history: LedgerHistory, gates: GateKeys, allow_unsigned_chain: bool) -> None:
        self.history = history
        self.gates = gates
        self.allow_unsigned = allow_unsigned_chain
        self.report = VerifyReport(str(history.path), history.commit)
        self.state: dict[str, str] = {}  # path -> blob id, as of the commit being checked
        self.prev_entry: bytes | None = None
        self.unsigned = 0

    def problem(self, commit: _Commit, seq: int | None, message: str) -> None:
        self.report.problems.append(Problem(commit.sha, seq, message))

    def run(self, commits: list[_Commit], blobs: dict[str, bytes]) -> None:
        for commit in commits:
            for status, rel, blob in commit.changes:
                if status == "D":
                    self.state.pop(rel, None)
                else:
                    self.state[rel] = blob
            if not commit.parents:
                self.root(commit, blobs)
            else:
                self.decision(commit, blobs)
        if self.unsigned:
            self.report.notes.append(f"{self.unsigned} chain entr(y/ies) unsigned, accepted because "
                                     "the chain was allowed to be unsigned: a decision deleted and "
                                     "the chain rebuilt after it would not be detected")

    def root(self, commit: _Commit, blobs: dict[str, bytes]) -> None:
        added = {rel: blob for status, rel, blob in commit.changes}
        if set(added) != {MARKER} or blobs.get(added[MARKER]) != MARKER_TEXT:
            self.problem(commit, None, f"the first commit must add exactly the {MARKER} marker (v2)")

    def decision(self, commit: _Commit, blobs: dict[str, bytes]) -> None:
        seq = self.report.decisions + 1
        if len(commit.parents) != 1:
            self.problem(commit, seq, f"a merge commit ({len(commit.parents)} parents); the ledger is linear")
        changed = [(s, r) for s, r, _ in commit.changes if s != "A"]
        for status, rel in changed:
            self.problem(commit, seq, f"{rel} {'deleted' if status == 'D' else 'modified'}; "
                                      "a decision commit only adds files")
        added = {rel: blob for status, rel, blob in commit.changes if status == "A"}
        entries = [rel for rel in added if rel.startswith("entries/")]
        if len(entries) != 1:
            self.problem(commit, seq, f"adds {len(entries)} chain entries, expected exactly 1")
            return
        self.report.decisions = seq
        raw = blobs[added[entries[0]]]
        if entries[0].endswith(ATTESTATION_SUFFIX):
            self.attestation(commit, seq, entries[0], raw, added, blobs)
            return
        try:
            payload, _ = entry_payload(raw)
            manifest = EntryManifest.from_payload(payload)
        except LedgerError as exc:
            self.problem(commit, seq, f"{entries[0]}: {exc.detail}")
            self.prev_entry = raw
            self.report.entries.append(f"sha256:{sha256_hex(raw)}")
            return
        self.entry(commit, seq, entries[0], raw, manifest, entry_path(seq, manifest.decision_id))
        self.prev_entry = raw
        self.report.head_entry = f"sha256:{sha256_hex(raw)}"
        self.report.entries.append(self.report.head_entry)
        expected = {entries[0], record_path(manifest.decision_id), request_path(manifest.decision_id)}
        for rel in sorted(expected - {entries[0]}):
            if rel not in added:
                self.problem(commit, seq, f"{rel} is not added by this commit")
        self.files(commit, seq, manifest, added, blobs)
        extra = sorted(set(added) - expected - {evidence_path(h) for _, h in manifest.evidence}
                       - {r for r in added if r.startswith(bundle_prefix(manifest.bundle_digest))})
        for rel in extra:
            self.problem(commit, seq, f"{rel} is added but no part of decision {manifest.decision_id}")

    def attestation(self, commit: _Commit, seq: int, rel: str, raw: bytes, added: dict[str, str],
                    blobs: dict[str, bytes]) -> None:
        """An attestation link: the chain checks of any entry, then its one attestation file."""
        try:
            manifest = AttestationManifest.from_payload(entry_payload(raw)[0])
        except LedgerError as exc:
            self.problem(commit, seq, f"{rel}: {exc.detail}")
            manifest = None
        if manifest is not None:
            self.entry(commit, seq, rel, raw, manifest,
                       attestation_entry_path(seq, manifest.attestation_id))
        self.prev_entry = raw
        self.report.head_entry = f"sha256:{sha256_hex(raw)}"
        self.report.entries.append(self.report.head_entry)
        if manifest is None:
            return
        stored = attestation_path(manifest.attestation_id)
        for extra in sorted(set(added) - {rel, stored}):
            self.problem(commit, seq, f"{extra} is added but no part of attestation "
                                      f"{manifest.attestation_id}")
        blob = added.get(stored)
        if blob is None:
            self.problem(commit, seq, f"{stored} is not added by this commit")
            return
        data = blobs[blob]
        if sha256_hex(data) != manifest.attestation_sha256:
            self.problem(commit, seq, f"{stored} does not match the sha256 its entry records")
            return
        try:
            envelope = Envelope.from_json(data)
            statement = Statement.parse(envelope.payload)
        except EvidenceInvalid as exc:
            self.problem(commit, seq, f"{stored} is not a signed statement ({exc})")
            return
        if statement.kind != manifest.kind:
            self.problem(commit, seq, f"{stored} is a {statement.kind} statement; its entry "
                                      f"says {manifest.kind}")
        elif ATTESTATION_KINDS[manifest.kind] and not self.gates.signed(envelope, statement.issued_at):
            self.problem(commit, seq, f"{stored}: no signature verifies under a trusted gate key")
        elif manifest.kind == "deployment-attestation":
            decision = str((statement.predicate.get("decision") or {}).get("id", ""))
            if record_path(decision) not in self.state:
                self.problem(commit, seq, f"{stored} attests decision {decision!r}, which the "
                                          "ledger does not hold before it")

    def entry(self, commit: _Commit, seq: int, rel: str, raw: bytes,
              manifest: EntryManifest | AttestationManifest, expected_rel: str) -> None:
        named = manifest.decision_id if isinstance(manifest, EntryManifest) else manifest.attestation_id
        if rel != expected_rel or manifest.seq != seq:
            self.problem(commit, seq, f"{rel} is entry {manifest.seq} of {named}; "
                                      f"expected entry {seq} (a decision was deleted or reordered)")
        prev = f"sha256:{sha256_hex(self.prev_entry)}" if self.prev_entry is not None else None
        if manifest.prev != prev:
            self.problem(commit, seq, f"the chain is broken: entry names previous {manifest.prev}, "
                                      f"the previous entry is {prev} (a decision was deleted, "
                                      "inserted or rewritten)")
        trailers = dict(_TRAILER.findall(commit.message))
        if trailers.get("Seq") != str(seq) or trailers.get("Entry") != f"sha256:{sha256_hex(raw)}":
            self.problem(commit, seq, "the commit message does not name this entry "
                                      "(Slmgate-Seq/Slmgate-Entry): the commit was rewritten")
        at = _time(manifest.recorded_at)
        try:
            envelope = Envelope.from_json(raw)
        except EvidenceInvalid:
            if self.allow_unsigned:
                self.unsigned += 1
            else:
                self.problem(commit, seq, f"{rel} is not signed by the gate (written without the "
                                          "gate key); the chain link is not tamper-evident")
            return
        if not self.gates.signed(envelope, at):
            self.problem(commit, seq, f"{rel}: no signature verifies under a trusted gate key")

    def files(self, commit: _Commit, seq: int, m: EntryManifest, added: dict[str, str],
              blobs: dict[str, bytes]) -> None:
        for rel, digest in ((record_path(m.decision_id), m.record_sha256),
                            (request_path(m.decision_id), m.request_sha256)):
            blob = added.get(rel)
            if blob is not None and sha256_hex(blobs[blob]) != digest:
                self.problem(commit, seq, f"{rel} does not match the sha256 its entry records")
        for ref, digest in m.evidence:
            rel = evidence_path(digest)
            if rel not in self.state:
                self.problem(commit, seq, f"evidence {ref!r} ({rel}) is missing")
        for rel, blob in added.items():
            match = _EVIDENCE.match(rel)
            if match and sha256_hex(blobs[blob]) != match[1]:
                self.problem(commit, seq, f"{rel} does not match its address (edited evidence)")
        self.bundle(commit, seq, m, added, blobs)
        record_blob = added.get(record_path(m.decision_id))
        if record_blob is not None:
            self.record(commit, seq, m, blobs[record_blob])

    def bundle(self, commit: _Commit, seq: int, m: EntryManifest, added: dict[str, str],
               blobs: dict[str, bytes]) -> None:
        prefix = bundle_prefix(m.bundle_digest)
        stored = {rel[len(prefix):]: blob for rel, blob in self.state.items() if rel.startswith(prefix)}
        if not stored:
            self.problem(commit, seq, f"policy bundle {m.bundle_digest} is not stored")
            return
        new = [rel for rel in added if rel.startswith(prefix)]
        if new and len(new) != len(stored):
            self.problem(commit, seq, f"adds files to the already stored bundle {m.bundle_digest}")
        elif new and files_digest({r: blobs[b] for r, b in stored.items()}) != m.bundle_digest:
            self.problem(commit, seq, f"the stored bundle does not hash to {m.bundle_digest} "
                                      "(a bundle file was edited, added or removed)")

    def record(self, commit: _Commit, seq: int, m: EntryManifest, raw: bytes) -> None:
        rel = record_path(m.decision_id)
        try:
            envelope = Envelope.from_json(raw)
            statement = Statement.parse(envelope.payload)
            decision = record_decision(raw)
        except (EvidenceInvalid, LedgerError) as exc:
            self.problem(commit, seq, f"{rel} is not a decision record ({exc})")
            return
        if statement.kind != "decision-record":
            self.problem(commit, seq, f"{rel} is a {statement.kind} statement, not a decision record")
        if not self.gates.signed(envelope, statement.issued_at):
            self.problem(commit, seq, f"{rel}: no signature verifies under a trusted gate key")
        stored = {h for _, h in m.evidence}
        expected = {
            "id": (decision.get("id"), m.decision_id),
            "outcome": (decision.get("outcome"), m.outcome),
            "bundle_digest": (decision.get("bundle_digest"), m.bundle_digest),
            "request.digest": ((decision.get("request") or {}).get("digest"), f"sha256:{m.request_sha256}"),
        }
        for name, (got, want) in expected.items():
            if got != want:
                self.problem(commit, seq, f"the record's {name} {got!r} disagrees with its entry ({want!r})")
        used = {e.get("envelope_sha256") for e in decision.get("evidence", []) if isinstance(e, dict)}
        missing = sorted(h for h in used - stored if h)
        if missing:
            self.problem(commit, seq, f"the record used evidence the ledger does not keep: {missing}")


def _time(text: str) -> datetime | None:
    try:
        return parse_time(text, what="recorded_at")
    except ValueError:
        return None


def _working_tree(history: LedgerHistory, report: VerifyReport) -> None:
    """Committed files must be present and unchanged in the working tree (files not committed —
    what an interrupted write leaves — are ignored)."""
    changed = []
    for rel, blob in sorted(history.tree.items()):
        try:
            data = (history.path / rel).read_bytes()
        except OSError:
            changed.append(f"{rel} deleted")
            continue
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != blob:  # git object id
            changed.append(f"{rel} edited")
    for item in changed:
        report.problems.append(Problem(history.commit, None, f"working tree: {item} (not committed)"))


def verify_ledger(path: Path, gates: GateKeys, *, allow_unsigned_chain: bool = False) -> VerifyReport:
    """Verify the ledger at ``path``. ``LedgerError`` (exit 2) if it is not a ledger at all.

    Checks, in order, for every commit from the first:

    1. the history is linear; the first commit adds exactly the v2 marker;
    2. each later commit only adds files, among them exactly one chain entry;
    3. the entry has the next sequence number, names the previous entry's sha256 (``prev``),
       is named by the commit's Slmgate-Seq/Slmgate-Entry trailers, and is signed by a gate key;
    4. the record and request it names were added with it and match their sha256; every
       evidence envelope it names is present, and each one added matches its address;
    5. its policy bundle is stored, and a newly stored bundle hashes to its digest;
    6. the record is a decision-record statement signed by a gate key, agreeing with the entry
       on id, outcome, bundle digest, request digest and the evidence it used;

    and finally the working tree holds every committed file unchanged. A git object that
    cannot be read is a problem of the report (could not verify), not an ``InputError``.
    """
    try:
        with LedgerHistory(path) as history:
            commits = _history(history)
            verifier = _Verifier(history, gates, allow_unsigned_chain)
            for start in range(0, len(commits), 500):
                chunk = commits[start:start + 500]
                blobs = history.read_blobs((b for c in chunk for s, _, b in c.changes if s != "D"),
                                           "committed files")
                verifier.run(chunk, blobs)
            report = verifier.report
            _working_tree(history, report)
            return report
    except LedgerCorrupted as exc:  # could not verify: a problem (exit 4), not bad usage
        report = VerifyReport(str(path), _head_name(path))
        report.problems.append(Problem(report.head, None, exc.detail))
        return report


def _head_name(path: Path) -> str:
    try:
        return (path / ".git" / "HEAD").read_text().strip().removeprefix("ref: ")
    except OSError:
        return "HEAD"


def report_text(report: VerifyReport) -> str:
    if report.ok:
        lines = [f"OK: ledger {report.ledger}: {report.decisions} decision(s), chain unbroken, "
                 f"head {report.head[:12]} entry {report.head_entry or 'none'}"]
    else:
        first = report.problems[0]
        lines = [f"FAIL: ledger {report.ledger}: first bad commit {first.commit} — {first.message}"]
        lines += [f"  {p}" for p in report.problems[:50]]
        if len(report.problems) > 50:
            lines.append(f"  ... and {len(report.problems) - 50} more")
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines)

