"""`slmgate ledger verify`: every commit of a ledger checked against a root of trust that the
caller supplies (never one read from the ledger itself) — from the first commit, or only the
commits after a signed checkpoint (``verify --from``).

Cost: one pass over the commits, each commit's added files read once in batches, and every
lookup (is this evidence stored? which files make up this bundle?) a dict access — linear in
the number of decisions. From a checkpoint, linear in the decisions after it: what the commits
after it did not add is looked up in the checkpoint's commit, path by path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

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
from slmgate.evidence import Envelope, PublicKey, Statement, format_time, parse_time
from slmgate.evidence.errors import EvidenceInvalid, InputError


class Checkpoint(Protocol):
    """What verify ``--from`` needs of a signed checkpoint (``_checkpoint.Checkpoint``, whose
    signature the caller has checked): defined here so that verify never imports it."""

    @property
    def decisions(self) -> int: ...
    @property
    def head_entry(self) -> str | None: ...
    @property
    def head_commit(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def source(self) -> str: ...

_TRAILER = re.compile(r"^Slmgate-(Seq|Entry): (\S+)$", re.MULTILINE)
_EVIDENCE = re.compile(r"^evidence/sha256/[0-9a-f]{2}/([0-9a-f]{64})\.dsse\.json$")


@dataclass(frozen=True)
class GateKeys:
    """The keys allowed to sign decision records and chain entries, with their validity windows
    when they come from a trust policy."""

    keys: tuple[tuple[PublicKey, datetime | None, datetime | None], ...]
    # From a trust policy: for each attestation kind the ledger keeps from outside the gate
    # (ops-metrics), the keys allowed to sign it. Empty with bare gate keys: not checkable.
    attesters: tuple[tuple[str, tuple[tuple[PublicKey, datetime | None, datetime | None], ...]], ...] = ()

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
        attesters = tuple((kind, tuple((i.key, i.valid_from, i.valid_until) for i in trust.identities
                                       if kind in i.may_sign and i.key.keyid not in trust.revoked_keyids))
                          for kind, by_gate in ATTESTATION_KINDS.items() if not by_gate)
        return cls(gates, attesters)

    def signed(self, envelope: Envelope, at: datetime | None) -> bool:
        """At least one valid signature by a gate key valid at ``at``."""
        return _signed_by(self.keys, envelope, at)

    def attested(self, kind: str, envelope: Envelope, at: datetime | None) -> bool | None:
        """Whether an identity the trust policy allows to sign ``kind`` signed ``envelope``
        (valid at ``at``); ``None`` when these keys came without a trust policy."""
        for name, keys in self.attesters:
            if name == kind:
                return _signed_by(keys, envelope, at)
        return None


def _signed_by(keys: tuple[tuple[PublicKey, datetime | None, datetime | None], ...],
               envelope: Envelope, at: datetime | None) -> bool:
    valid = [k for k, start, end in keys
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
    entries_from: int = 0  # ``entries[0]`` is entry ``entries_from + 1`` (verified from a checkpoint)
    verified_from: str | None = None  # the checkpoint file a verify ``--from`` started at

    @property
    def ok(self) -> bool:
        return not self.problems

    def entry_at(self, seq: int) -> str | None:
        """``sha256:<hex>`` of chain entry ``seq`` if this run read it (``None`` before a
        ``--from`` checkpoint or past the head)."""
        index = seq - 1 - self.entries_from
        return self.entries[index] if 0 <= index < len(self.entries) else None

    def to_json(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "ok": self.ok, "head": self.head, "decisions": self.decisions,
                "head_entry": self.head_entry,
                "first_bad_commit": self.problems[0].commit if self.problems else None,
                "problems": [{"commit": p.commit, "seq": p.seq, "message": p.message}
                             for p in self.problems], "notes": self.notes,
                "verified_from": self.verified_from, "entries_checked": len(self.entries)}


@dataclass(frozen=True)
class _Commit:
    sha: str
    parents: tuple[str, ...]
    message: str
    changes: tuple[tuple[str, str, str], ...]  # (status, path, new blob)


def _history(history: LedgerHistory, since: str | None = None) -> list[_Commit]:
    """The commits up to the history's commit, oldest first (only those after ``since``)."""
    span = f"{since}..{history.commit}" if since else history.commit
    revs = [line.split() for line in
            history.git("rev-list", "--reverse", "--parents", span).decode().splitlines()]
    if not revs:
        return []
    log = history.git("log", "--format=%H%x1f%B%x1e", span).decode()
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


_BUNDLE = re.compile(r"^(bundles/[0-9a-f]{64}/)")


class _StoredFiles:
    """The ledger's files as of the commit being checked: path -> blob id, and the files of each
    stored bundle indexed by its folder, so that neither question scans every file stored so far.

    ``base`` answers for what was stored before the first commit checked (a checkpoint's commit
    when verifying ``--from``): a path's blob id or ``None``, a bundle folder's files."""

    def __init__(self, base: _BaseTree | None = None) -> None:
        self.files: dict[str, str] = {}
        self.bundles: dict[str, dict[str, str]] = {}  # "bundles/<hex>/" -> relpath -> blob
        self.deleted: set[str] = set()
        self.base = base

    def apply(self, status: str, rel: str, blob: str) -> None:
        match = _BUNDLE.match(rel)
        if status == "D":
            self.files.pop(rel, None)
            self.deleted.add(rel)
            if match:
                self.bundle(match[1]).pop(rel[len(match[1]):], None)
            return
        self.deleted.discard(rel)
        self.files[rel] = blob
        if match:
            self.bundle(match[1])[rel[len(match[1]):]] = blob

    def __contains__(self, rel: str) -> bool:
        if rel in self.files:
            return True
        return rel not in self.deleted and self.base is not None and self.base.blob(rel) is not None

    def bundle(self, prefix: str) -> dict[str, str]:
        """The stored files of the bundle in folder ``prefix``: relative path -> blob id."""
        if prefix not in self.bundles:
            self.bundles[prefix] = dict(self.base.bundle(prefix)) if self.base is not None else {}
        return self.bundles[prefix]


class _BaseTree:
    """Lookups in the tree of one commit (a checkpoint's), one git call per question asked."""

    def __init__(self, history: LedgerHistory, commit: str) -> None:
        self.history = history
        self.commit = commit

    def blob(self, rel: str) -> str | None:
        out = self.history.git("ls-tree", "-z", self.commit, "--", rel).decode()
        for line in filter(None, out.split("\0")):
            meta, name = line.split("\t", 1)
            if name == rel and meta.split()[1] == "blob":
                return meta.split()[2]
        return None

    def bundle(self, prefix: str) -> dict[str, str]:
        out = self.history.git("ls-tree", "-r", "-z", self.commit, "--", prefix).decode()
        found = {}
        for line in filter(None, out.split("\0")):
            meta, name = line.split("\t", 1)
            if name.startswith(prefix):
                found[name[len(prefix):]] = meta.split()[2]
        return found


class _Verifier:
    def __init__(self, history: LedgerHistory, gates: GateKeys, allow_unsigned_chain: bool,
                 base: _BaseTree | None = None) -> None:
        self.history = history
        self.gates = gates
        self.allow_unsigned = allow_unsigned_chain
        self.report = VerifyReport(str(history.path), history.commit)
        self.state = _StoredFiles(base)  # as of the commit being checked
        self.prev_entry: bytes | None = None
        self.unsigned = 0

    def problem(self, commit: _Commit, seq: int | None, message: str) -> None:
        self.report.problems.append(Problem(commit.sha, seq, message))

    def run(self, commits: list[_Commit], blobs: dict[str, bytes]) -> None:
        for commit in commits:
            for status, rel, blob in commit.changes:
                self.state.apply(status, rel, blob)
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
        elif self.gates.attested(manifest.kind, envelope, statement.issued_at) is False:
            self.problem(commit, seq, f"{stored}: no signature verifies under a key the trust "
                                      f"policy allows to sign {manifest.kind}")
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
        stored = self.state.bundle(prefix)
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
    what an interrupted write leaves — are ignored).

    Checked with git's own index rather than by re-hashing every file, on a private copy of
    ``.git/index`` (a verify never writes the ledger): first ``diff-index --cached`` shows that
    the index names exactly HEAD's blobs; then ``update-index --refresh`` re-hashes every file
    whose stat data (size, mtime, ctime, inode, ...) differs from what the index recorded when
    the file was written, and ``diff-files`` names what then still differs. This is sound
    because any write to a file changes its ctime, which user space cannot set back, so an edit
    cannot keep the stat data the index holds (git also re-hashes files written in the same
    second as the index: "racily clean"). Only someone who also rewrites ``.git/index`` by hand
    could hide an edit — and the working tree is a convenience copy: every decision is read and
    verified from git objects, never from it. When the index does not match HEAD (a copied
    ledger, a writer killed mid-way), every file is re-hashed against HEAD instead."""
    changed = _changed_by_index(history)
    if changed is None:
        changed = _changed_by_hashing(history)
    for item in changed:
        report.problems.append(Problem(history.commit, None, f"working tree: {item} (not committed)"))


def _changed_by_index(history: LedgerHistory) -> list[str] | None:
    git_dir = Path(history.repo.git_dir)
    if not (git_dir / "index").is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="slmgate-verify-") as tmp:
        index = Path(tmp) / "index"
        shutil.copyfile(git_dir / "index", index)
        env = {**os.environ, "GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(history.path),
               "GIT_DIR": str(git_dir)}

        def run(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(["git", *args], cwd=history.path, env=env, capture_output=True,
                                  check=False)

        if run("diff-index", "--cached", "--quiet", history.commit, "--").returncode != 0:
            return None  # the index is not HEAD's: hash every file instead
        run("update-index", "-q", "--refresh")
        out = run("diff-files", "--name-status", "-z", "--no-renames")
        if out.returncode != 0:
            return None
    tokens = out.stdout.decode().split("\0")
    return sorted(f"{rel} {'deleted' if status == 'D' else 'edited'}"
                  for status, rel in zip(tokens[0::2], tokens[1::2], strict=False) if rel)


def _changed_by_hashing(history: LedgerHistory) -> list[str]:
    changed = []
    for rel, blob in sorted(history.tree.items()):
        try:
            data = (history.path / rel).read_bytes()
        except OSError:
            changed.append(f"{rel} deleted")
            continue
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != blob:  # git object id
            changed.append(f"{rel} edited")
    return changed


def verify_ledger(path: Path, gates: GateKeys, *, allow_unsigned_chain: bool = False,
                  since: Checkpoint | None = None) -> VerifyReport:
    """Verify the ledger at ``path``. ``LedgerError`` (exit 2) if it is not a ledger at all.

    With ``since`` (a checkpoint whose signature the caller checked: ``read_checkpoint``), first
    that its commit is in the ledger, an ancestor of HEAD, and holds chain entry
    ``since.decisions`` hashing to ``since.head_entry`` as its newest decision — then the steps
    below for the commits after it only. Without it, for every commit from the first:

    1. the history is linear; the first commit adds exactly the v2 marker;
    2. each later commit only adds files, among them exactly one chain entry;
    3. the entry has the next sequence number, names the previous entry's sha256 (``prev``),
       is named by the commit's Slmgate-Seq/Slmgate-Entry trailers, and is signed by a gate key;
    4. the record and request it names were added with it and match their sha256; every
       evidence envelope it names is present, and each one added matches its address;
    5. its policy bundle is stored, and a newly stored bundle hashes to its digest;
    6. the record is a decision-record statement signed by a gate key, agreeing with the entry
       on id, outcome, bundle digest, request digest and the evidence it used;
    7. an attestation entry (steps 1-3 as any entry) adds exactly its attestation, matching its
       sha256 and of its kind: a deployment attestation signed by a gate key, naming a decision
       recorded before it; operations metrics signed, when the keys came from a trust policy,
       by an identity it allows to sign ops-metrics;

    and finally the working tree holds every committed file unchanged. A git object that
    cannot be read is a problem of the report (could not verify), not an ``InputError``.
    """
    try:
        with LedgerHistory(path) as history:
            base: _BaseTree | None = None
            if since is not None:
                start = _start_at_checkpoint(history, since)
                if isinstance(start, VerifyReport):
                    return start
                base = start
            commits = _history(history, since.head_commit if since else None)
            verifier = _Verifier(history, gates, allow_unsigned_chain, base)
            if since is not None:
                _resume(verifier, history, since)
                if commits and commits[0].parents[:1] != (since.head_commit,):
                    verifier.problem(commits[0], since.decisions + 1,
                                     f"does not follow the checkpoint's commit {since.head_commit[:12]}")
            for first in range(0, len(commits), 500):
                chunk = commits[first:first + 500]
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


def _start_at_checkpoint(history: LedgerHistory, cp: Checkpoint) -> _BaseTree | VerifyReport:
    """The checkpoint's commit as the base to verify from, or a failed report saying why it
    cannot be: not in the ledger, not an ancestor of HEAD, or another entry at its position."""
    def failed(message: str) -> VerifyReport:
        report = VerifyReport(str(history.path), history.commit, verified_from=cp.source)
        report.problems.append(Problem(history.commit, cp.decisions or None,
                                       f"checkpoint {cp.source}: {message}"))
        return report

    commit = cp.head_commit
    if not re.fullmatch(r"[0-9a-f]{40}", commit) or subprocess.run(
            ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=history.repo.git_dir,
            capture_output=True, check=False).returncode != 0:
        return failed(f"its commit {commit[:12]} is not in the ledger (history was rewritten)")
    if subprocess.run(["git", "merge-base", "--is-ancestor", commit, history.commit],
                      cwd=history.repo.git_dir, capture_output=True, check=False).returncode != 0:
        return failed(f"its commit {commit[:12]} is not on the current history (not an ancestor "
                      f"of HEAD {history.commit[:12]}): history was rewritten or cut back")
    base = _BaseTree(history, commit)
    message = history.git("log", "-1", "--format=%B", commit).decode()
    trailers = dict(_TRAILER.findall(message))
    if cp.decisions == 0:
        parents = history.git("rev-list", "--parents", "-n", "1", commit).decode().split()[1:]
        if parents:
            return failed(f"it saw no decisions, but its commit {commit[:12]} is not the first")
        return base
    if trailers.get("Seq") != str(cp.decisions) or trailers.get("Entry") != cp.head_entry:
        return failed(f"its commit {commit[:12]} does not record entry {cp.decisions} "
                      f"{cp.head_entry} (Slmgate-Seq/Slmgate-Entry)")
    raw = _entry_bytes(history, commit, cp.decisions)
    if raw is None or f"sha256:{sha256_hex(raw)}" != cp.head_entry:
        return failed(f"entry {cp.decisions} at its commit {commit[:12]} does not hash to "
                      f"{cp.head_entry}")
    return base


def _entry_bytes(history: LedgerHistory, commit: str, seq: int) -> bytes | None:
    """Chain entry ``seq`` as stored at ``commit`` (``None`` when there is none)."""
    folder = entry_path(seq, "x").rsplit("/", 1)[0] + "/"
    out = history.git("ls-tree", "-z", commit, "--", folder).decode()
    found = [line.split("\t", 1) for line in filter(None, out.split("\0"))]
    named = [meta.split()[2] for meta, name in found
             if name.rsplit("/", 1)[-1].startswith(f"{seq:08d}-")]
    return history.read_blob(named[0], f"chain entry {seq}") if len(named) == 1 else None


def _resume(verifier: _Verifier, history: LedgerHistory, cp: Checkpoint) -> None:
    """Start the chain where the checkpoint left it: its entry is the previous one."""
    report = verifier.report
    report.decisions = report.entries_from = cp.decisions
    report.head_entry = cp.head_entry
    report.verified_from = cp.source
    verifier.prev_entry = _entry_bytes(history, cp.head_commit, cp.decisions) if cp.decisions else None
    report.notes.append(f"verified from checkpoint {cp.source}: decisions 1-{cp.decisions} as "
                        f"signed at {format_time(cp.at)}, only the later commits checked")


def entry_digest_at(path: Path, seq: int) -> str | None:
    """``sha256:<hex>`` of chain entry ``seq`` in HEAD, ``None`` when there is none."""
    with LedgerHistory(path) as history:
        raw = _entry_bytes(history, history.commit, seq)
    return f"sha256:{sha256_hex(raw)}" if raw is not None else None


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

