"""Reading a ledger: the decisions committed at one commit, read from git objects only (never
the working tree), each checked against the digests its chain entry names, and the stored
policy bundles laid out in a temporary folder for evaluation."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import git
import orjson

from slmgate.engine.ledger._attestation import ATTESTATION_SUFFIX, AttestationManifest, attestation_path
from slmgate.engine.ledger._store import (
    EntryManifest,
    LedgerCorrupted,
    LedgerError,
    bundle_prefix,
    entry_payload,
    evidence_path,
    open_repo,
    record_path,
    request_path,
    sha256_hex,
)
from slmgate.engine.request._request import PromotionRequest, request_from_parts
from slmgate.evidence import Envelope, Statement
from slmgate.evidence.errors import EvidenceInvalid

_ENTRY = re.compile(r"^entries/\d{6}/(\d{8})-([^/]+)\.dsse\.json$")


def _files_of(manifest: EntryManifest) -> list[str]:
    return [record_path(manifest.decision_id), request_path(manifest.decision_id),
            *(evidence_path(h) for _, h in manifest.evidence)]


def record_decision(record: bytes) -> dict[str, Any]:
    """The decision inside a signed decision record (its signature is not checked here)."""
    try:
        payload = Envelope.from_json(record).payload
        try:
            statement = orjson.loads(payload)
        except orjson.JSONDecodeError:  # NaN, a number beyond a double: json's reading of them
            statement = json.loads(payload)
        decision = statement["predicate"]["decision"]
    except (EvidenceInvalid, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"not a decision record ({exc})") from exc
    if not isinstance(decision, dict):
        raise LedgerError("not a decision record (decision is not an object)")
    return decision


@dataclass(frozen=True)
class RecordedDecision:
    """One decision as the ledger keeps it; every file already matched its recorded digest."""

    entry_path: str
    entry: bytes
    manifest: EntryManifest
    record: bytes
    request: bytes
    evidence: dict[str, bytes] = field(repr=False)  # ref -> envelope bytes

    @property
    def decision_id(self) -> str:
        return self.manifest.decision_id

    @cached_property
    def decision(self) -> dict[str, Any]:
        return record_decision(self.record)

    def promotion_request(self) -> PromotionRequest:
        return request_from_parts(self.request, self.evidence, source=request_path(self.decision_id))


class LedgerHistory:
    """A read-only view of the ledger at ``path`` as of one commit (HEAD when opened). Use it
    as a context manager: bundles laid out for evaluation are removed on exit."""

    def __init__(self, path: Path, *, commit: str = "HEAD") -> None:
        self.path = path
        self.repo = open_repo(path)
        try:
            self.commit = self.repo.git.rev_parse("--verify", f"{commit}^{{commit}}").strip()
        except git.GitCommandError as exc:
            raise LedgerError(f"no commit {commit!r} in the ledger", file=str(path)) from exc
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._bundles: dict[str, Path] = {}
        self._located: dict[str, str] = {}  # path -> blob id, for paths looked up one by one

    def __enter__(self) -> LedgerHistory:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.repo.close()

    @cached_property
    def tree(self) -> dict[str, str]:
        """Every file of the commit: path -> blob id (hex)."""
        return self._ls_tree(recursive=True)

    def _ls_tree(self, *paths: str, recursive: bool = False) -> dict[str, str]:
        flags = ["-r"] if recursive else []
        out = self.git("ls-tree", "-z", "--full-tree", *flags, self.commit, "--", *paths).decode()
        files = {}
        for line in filter(None, out.split("\0")):
            meta, rel = line.split("\t", 1)
            kind, blob = meta.split()[1:3]
            if kind == "blob":
                files[rel] = blob
        return files

    def listing(self, *folders: str) -> dict[str, str]:
        """Every file under ``folders`` in the commit: path -> blob id."""
        return self._ls_tree(*folders, recursive=True)

    def locate(self, paths: Iterable[str]) -> dict[str, str]:
        """The blob ids of ``paths`` in the commit (those it holds): from the full listing when
        it was read, otherwise by ``ls-tree`` of just these paths, which reads only the trees on
        their way — not every tree of the commit."""
        wanted = list(dict.fromkeys(paths))
        if "tree" in self.__dict__:
            return {p: self.tree[p] for p in wanted if p in self.tree}
        missing = [p for p in wanted if p not in self._located]
        for start in range(0, len(missing), 1000):
            chunk = missing[start:start + 1000]
            found = self._ls_tree(*chunk)
            self._located.update({p: found[p] for p in chunk if p in found})
        return {p: self._located[p] for p in wanted if p in self._located}

    def git(self, *args: str, feed: str | None = None) -> bytes:
        """Run a read-only git command in the ledger; ``LedgerError`` when it fails."""
        proc = subprocess.run(["git", *args], cwd=self.repo.git_dir, capture_output=True,
                              input=feed.encode() if feed is not None else None, check=False)
        if proc.returncode != 0:
            raise LedgerCorrupted(f"git {args[0]} failed ({proc.stderr.decode(errors='replace').strip()}); "
                                  "the ledger's objects are corrupted", file=str(self.path))
        return proc.stdout

    def read_blobs(self, blobs: Iterable[str], what: str = "objects") -> dict[str, bytes]:
        """Many blobs in one ``git cat-file --batch`` run: blob id -> bytes."""
        wanted = list(dict.fromkeys(blobs))
        if not wanted:
            return {}
        proc = subprocess.run(["git", "cat-file", "--batch"], cwd=self.repo.git_dir,
                              input="\n".join(wanted).encode() + b"\n", capture_output=True,
                              check=False)
        out, pos, found = proc.stdout, 0, {}
        try:
            for blob in wanted:
                end = out.index(b"\n", pos)
                header = out[pos:end].split()
                if len(header) != 3 or header[1] != b"blob":
                    raise ValueError(f"{blob[:12]} is {b' '.join(header[1:]).decode() or 'unreadable'}")
                size = int(header[2])
                found[header[0].decode()] = out[end + 1:end + 1 + size]
                pos = end + 2 + size
        except ValueError as exc:
            detail = proc.stderr.decode(errors="replace").strip() or str(exc)
            raise LedgerCorrupted(f"cannot read {what}: {detail}; the ledger's objects are "
                              "corrupted or missing", file=str(self.path),
                              advice="run `slmgate ledger verify`") from exc
        return found

    def read_blob(self, blob: str, what: str) -> bytes:
        return self.read_blobs([blob], what)[blob]

    def read(self, rel: str) -> bytes:
        return self.read_blob(self._blob(rel), rel)

    @cached_property
    def chain_paths(self) -> list[str]:
        """Every link of the chain, decisions and attestations, in order."""
        listing = self.tree if "tree" in self.__dict__ else self.listing("entries/")
        return sorted(p for p in listing if _ENTRY.match(p))

    @cached_property
    def entry_paths(self) -> list[str]:
        """The decisions' chain entries, in order."""
        return [p for p in self.chain_paths if not p.endswith(ATTESTATION_SUFFIX)]

    @cached_property
    def attestation_paths(self) -> list[str]:
        """The attestations' chain entries, in order (``engine.ledger._attestation``)."""
        return [p for p in self.chain_paths if p.endswith(ATTESTATION_SUFFIX)]

    def attestations(self, kind: str) -> Iterator[AttestationManifest]:
        """The manifests of the attestation entries of ``kind``, in chain order."""
        for rel in self.attestation_paths:
            manifest = AttestationManifest.from_payload(entry_payload(self.read(rel))[0])
            if manifest.kind == kind:
                yield manifest

    def attested(self, manifest: AttestationManifest) -> tuple[Envelope, Statement]:
        """The stored envelope of an attestation entry, checked against the digest the entry
        records, and its statement, of the entry's kind; raises ``EvidenceInvalid``. Who may
        have signed it is the caller's question (the gate, or an identity of the trust policy)."""
        raw = self.read(attestation_path(manifest.attestation_id))
        if sha256_hex(raw) != manifest.attestation_sha256:
            raise EvidenceInvalid("does not match the digest its entry records")
        envelope = Envelope.from_json(raw)
        statement = Statement.parse(envelope.payload)
        if statement.kind != manifest.kind:
            raise EvidenceInvalid(f"is a {statement.kind} statement")
        return envelope, statement

    def resolve(self, decision_id: str) -> str:
        """The entry path of a decision id, or of a unique prefix of one (8 characters at least)."""
        exact = [p for p in self.entry_paths if _ENTRY.match(p)[2] == decision_id]  # type: ignore[index]
        if exact:
            return exact[0]
        found = [p for p in self.entry_paths
                 if len(decision_id) >= 8 and _ENTRY.match(p)[2].startswith(decision_id)]  # type: ignore[index]
        if len(found) == 1:
            return found[0]
        if found:
            raise LedgerError(f"decision id prefix {decision_id!r} is ambiguous ({len(found)} decisions)",
                              file=str(self.path))
        raise LedgerError(f"no decision {decision_id!r} in the ledger", file=str(self.path),
                          advice="`slmgate ledger log` lists the recorded decisions")

    def load(self, entry: str) -> RecordedDecision:
        """One decision; a file that does not match its digest is refused (``LedgerError``)."""
        return self.load_many([entry])[0]

    def load_many(self, entries: Sequence[str],
                  keep: Callable[[EntryManifest], bool] | None = None) -> list[RecordedDecision]:
        """Decisions by entry path, their files read in two batches; with ``keep``, only those
        whose chain entry it accepts (the others' files are never read)."""
        self.locate(entries)
        raws = self.read_blobs((self._blob(e) for e in entries), "chain entries")
        manifests = [EntryManifest.from_payload(entry_payload(raws[self._blob(e)])[0])
                     for e in entries]
        if keep is not None:
            kept = [(e, m) for e, m in zip(entries, manifests, strict=True) if keep(m)]
            entries, manifests = [e for e, _ in kept], [m for _, m in kept]
        self.locate(p for m in manifests for p in _files_of(m))
        wanted = [self._blob(p) for m in manifests for p in _files_of(m)]
        blobs = self.read_blobs(wanted, "decision files")
        loaded = []
        for entry, manifest in zip(entries, manifests, strict=True):
            def checked(rel: str, digest: str, entry: str = entry) -> bytes:
                data = blobs[self._blob(rel)]
                if sha256_hex(data) != digest:
                    raise LedgerError(f"{rel} does not match the digest its entry records "
                                      f"({entry})", file=str(self.path),
                                      advice="run `slmgate ledger verify`")
                return data

            record = checked(record_path(manifest.decision_id), manifest.record_sha256)
            request = checked(request_path(manifest.decision_id), manifest.request_sha256)
            evidence = {ref: checked(evidence_path(h), h) for ref, h in manifest.evidence}
            loaded.append(RecordedDecision(entry, raws[self._blob(entry)], manifest, record,
                                           request, evidence))
        return loaded

    def _blob(self, rel: str) -> str:
        tree = self.__dict__.get("tree")  # the full listing, once read: a plain lookup
        blob = tree.get(rel) if tree is not None else self._located.get(rel) or self.locate([rel]).get(rel)
        if blob is None:
            raise LedgerError(f"{rel} is missing from commit {self.commit[:12]}",
                              file=str(self.path), advice="run `slmgate ledger verify`")
        return blob

    def decisions(self, batch: int = 500, first: int = 20,
                  keep: Callable[[EntryManifest], bool] | None = None) -> Iterator[RecordedDecision]:
        """Every decision (whose entry ``keep`` accepts), in chain order, read in batches (a
        small ``first`` one, so that a streaming reader shows something at once)."""
        paths = self.entry_paths
        bounds = [0, min(first, len(paths)), *range(min(first, len(paths)) + batch, len(paths), batch),
                  len(paths)]
        for start, end in itertools.pairwise(bounds):
            if end > start:
                yield from self.load_many(paths[start:end], keep)

    def bundle_files(self, digest: str) -> dict[str, bytes]:
        prefix = bundle_prefix(digest)
        listing = self.tree if "tree" in self.__dict__ else self.listing(prefix)
        paths = {p: b for p, b in listing.items() if p.startswith(prefix)}
        blobs = self.read_blobs(paths.values(), f"bundle {digest}")
        files = {p[len(prefix):]: blobs[b] for p, b in paths.items()}
        if not files:
            raise LedgerError(f"bundle {digest} is not stored in the ledger", file=str(self.path))
        return files

    def bundle_dir(self, digest: str) -> Path:
        """The stored bundle laid out in a temporary folder (once per digest)."""
        if digest not in self._bundles:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="slmgate-ledger-")
            root = Path(self._tmp.name) / digest.removeprefix("sha256:")
            for rel, data in self.bundle_files(digest).items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
            self._bundles[digest] = root
        return self._bundles[digest]
