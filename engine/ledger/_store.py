"""The ledger: a git repository (gitpython) with one commit per decision, written atomically.

Layout of every commit's tree::

    slmgate-ledger                            marker: "slmgate decision ledger v2"
    entries/<seq/100>/<seq>-<id>.dsse.json    the chain: a manifest per decision, signed by the
                                              gate, naming the previous entry by sha256 (``prev``)
    decisions/<xx>/<id>.dsse.json             the signed decision record
    requests/<xx>/<id>.json                   the promotion request, bytes as received
    evidence/sha256/<h[:2]>/<h>.dsse.json     evidence envelopes, content-addressed, stored once
    bundles/<digest-hex>/<relpath>            the policy bundle, stored once per digest;
                                              ``load_bundle`` on it reproduces the digest

``<xx>`` is the first byte of sha256(id), in hex: folders fan out so that a commit rewrites
small trees, not ones that grow with the ledger. A decision commit only adds files; nothing is
ever modified or deleted. ``.slmgate/`` beside ``.git`` holds the index of ``ledger log`` and
``replay`` (``_index``: derived, git-ignored, never committed); the writer never touches it.

Folders are not sharded by sequence number (``decisions/000/012/…``), because that is not
what an append costs: measured at 30,000 decisions (docs/benchmarks.md), the trees one append
rewrites — the root, ``entries/`` (one subfolder per 100 entries) and its newest subfolder, and
one ``<xx>`` folder each of decisions, requests and evidence (~n/256 names each) — add up to
about 50 KB to hash, while the index git reads holds every path (10 MiB). The layout and the v2
marker therefore stay as they are: every ledger ever written has one layout, and there is no
rule for mixing two.

Write protocol, all under an exclusive flock on ``.git/slmgate.lock``:

1. recover: drop git lock files and the private index a killed writer left, delete the files a
   killed writer journalled but never committed; when ``.git/index`` is not the one the last
   writer installed for HEAD (``.git/slmgate-indexed``), reset it to HEAD and delete untracked
   files under the ledger's folders (on open, always);
2. refuse a decision already in HEAD (nothing written);
3. journal the paths about to be written (``.git/slmgate-journal``), write the new files (temp
   file + rename each);
4. stage them in a private copy of ``.git/index`` (``update-index --add`` of the new paths only:
   git's cache-tree keeps every untouched tree, so ``write-tree`` rehashes only the folders on
   the new paths), ``commit-tree``;
5. ``update-ref`` main NEW OLD: the commit point — before it the decision is absent, after it
   fully recorded;
6. install the private index as ``.git/index``, record it in ``.git/slmgate-indexed``, drop the
   journal; every ``PACK_EVERY`` decisions, pack the loose objects (``repack -d --geometric``,
   so the number of packs stays logarithmic).

An append costs a handful of git calls, each proportional to the touched folders and to the
size of the index (``core.splitIndex``: what is copied and rewritten is the part added since
the shared index; the shared index is still read) — never a walk of the working tree or a read
of every tree.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Protocol

import git

from slmgate.evidence import Envelope, SigningKey, canonical_json, format_time, sign_envelope, write_atomic
from slmgate.evidence.errors import InputError, PolicyError

MARKER = "slmgate-ledger"
MARKER_TEXT = b"slmgate decision ledger v2\n"
ENTRY_PAYLOAD_TYPE = "application/vnd.slmgate.ledger-entry+json"
ENTRY_TYPE = "https://slmgate.dev/ledger-entry/v1"
FOLDERS = ("entries", "decisions", "requests", "evidence", "bundles", "attestations")
_AUTHOR = {"GIT_AUTHOR_NAME": "slmgate", "GIT_AUTHOR_EMAIL": "slmgate@localhost",
           "GIT_COMMITTER_NAME": "slmgate", "GIT_COMMITTER_EMAIL": "slmgate@localhost"}
_BRANCH = "refs/heads/main"
_log = logging.getLogger("slmgate")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_STALE_LOCKS = ("index.lock", "HEAD.lock", "refs/heads/main.lock", "packed-refs.lock")
_INDEXED = "slmgate-indexed"  # "<commit> <index mtime_ns> <index size>" as the last writer left it
_JOURNAL = "slmgate-journal"  # the paths a writer is about to write, one a line
_CONFIG = (("core.untrackedCache", "true"), ("index.version", "4"), ("core.splitIndex", "true"))
PACK_EVERY = 1000


class LedgerError(InputError):
    """The ledger cannot be read or written as asked (not a ledger, unreadable object, ...)."""


class LedgerCorrupted(LedgerError):
    """A ledger whose git objects cannot be read: bad usage for the commands that read it (2),
    but for `ledger verify` a ledger that could not be verified (4)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shard(decision_id: str) -> str:
    return hashlib.sha256(decision_id.encode()).hexdigest()[:2]


def entry_path(seq: int, decision_id: str) -> str:
    return f"entries/{seq // 100:06d}/{seq:08d}-{decision_id}.dsse.json"


def record_path(decision_id: str) -> str:
    return f"decisions/{_shard(decision_id)}/{decision_id}.dsse.json"


def request_path(decision_id: str) -> str:
    return f"requests/{_shard(decision_id)}/{decision_id}.json"


def evidence_path(hex_digest: str) -> str:
    return f"evidence/sha256/{hex_digest[:2]}/{hex_digest}.dsse.json"


def bundle_prefix(digest: str) -> str:
    return f"bundles/{digest.removeprefix('sha256:')}/"


def files_digest(files: Mapping[str, bytes]) -> str:
    """The bundle digest of ``load_bundle`` over files given by relative path."""
    from slmgate.engine.policy._bundle import bundle_digest

    return bundle_digest(files)


def bundle_files(root: Path) -> dict[str, bytes]:
    """Every file of the bundle at ``root`` that shapes a decision, by relative path, exactly as
    ``load_bundle`` reads and digests them."""
    from slmgate.engine.policy._bundle import load_bundle

    return dict(load_bundle(root).files)


@dataclass(frozen=True)
class EntryManifest:
    """One link of the chain. ``prev`` is ``sha256:<hex>`` of the previous entry file's bytes
    (``None`` for the first); digests are hex sha256 of the files as stored. Round-trips:
    ``EntryManifest.from_payload(m.payload()) == m``."""

    seq: int
    prev: str | None
    decision_id: str
    outcome: str
    recorded_at: str
    record_sha256: str
    request_sha256: str
    evidence: tuple[tuple[str, str], ...]  # (ref, sha256 hex), in request order
    bundle_digest: str
    policy_revision: str | None
    slmgate_version: str

    def payload(self) -> bytes:
        return canonical_json({
            "_type": ENTRY_TYPE, "seq": self.seq, "prev": self.prev,
            "decision_id": self.decision_id, "outcome": self.outcome,
            "recorded_at": self.recorded_at,
            "record": {"path": record_path(self.decision_id), "sha256": self.record_sha256},
            "request": {"path": request_path(self.decision_id), "sha256": self.request_sha256},
            "evidence": [{"ref": r, "sha256": h} for r, h in self.evidence],
            "bundle": {"digest": self.bundle_digest, "revision": self.policy_revision},
            "slmgate_version": self.slmgate_version,
        })

    @classmethod
    def from_payload(cls, raw: bytes) -> EntryManifest:
        try:
            doc = json.loads(raw)
            if doc["_type"] != ENTRY_TYPE:
                raise ValueError(f"_type {doc['_type']!r}")
            manifest = cls(
                seq=int(doc["seq"]), prev=doc["prev"], decision_id=str(doc["decision_id"]),
                outcome=str(doc["outcome"]), recorded_at=str(doc["recorded_at"]),
                record_sha256=str(doc["record"]["sha256"]),
                request_sha256=str(doc["request"]["sha256"]),
                evidence=tuple((str(e["ref"]), str(e["sha256"])) for e in doc["evidence"]),
                bundle_digest=str(doc["bundle"]["digest"]),
                policy_revision=doc["bundle"]["revision"],
                slmgate_version=str(doc.get("slmgate_version", "")),
            )
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"not a ledger entry manifest ({exc})") from exc
        if not _ID.match(manifest.decision_id) or not all(_HEX.match(h) for _, h in manifest.evidence):
            raise LedgerError("ledger entry manifest names an invalid decision id or digest")
        return manifest


def entry_envelope(manifest: EntryManifest, key: SigningKey | None) -> bytes:
    """The entry as a DSSE envelope signed by the gate; with no key, an envelope without
    signatures (``ledger verify`` refuses those unless told the chain may be unsigned)."""
    return entry_envelope_bytes(manifest.payload(), key)


def entry_envelope_bytes(payload: bytes, key: SigningKey | None) -> bytes:
    """Any chain link's payload (a decision's or an attestation's) as its entry envelope."""
    if key is not None:
        return sign_envelope(payload, [key], ENTRY_PAYLOAD_TYPE).to_json()
    return Envelope(ENTRY_PAYLOAD_TYPE, payload, ()).to_json()


def entry_payload(raw: bytes) -> tuple[bytes, int]:
    """The manifest bytes inside an entry envelope and its signature count (not verified)."""
    try:
        doc = json.loads(raw)
        if doc["payloadType"] != ENTRY_PAYLOAD_TYPE:
            raise ValueError(f"payloadType {doc['payloadType']!r}")
        return base64.b64decode(doc["payload"], validate=True), len(doc["signatures"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"not a ledger entry envelope ({exc})") from exc


def slmgate_version() -> str:
    try:
        return metadata.version("slmgate")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class LedgerEntry:
    decision_id: str
    commit: str
    record_path: str
    seq: int = 0


@dataclass(frozen=True)
class PendingDecision:
    """Everything one decision commit holds, before it is committed."""

    decision_id: str
    outcome: str
    record: bytes
    request: bytes
    evidence: tuple[tuple[str, bytes], ...]  # (ref, envelope bytes) in request order
    bundle: Mapping[str, bytes]  # relative path -> bytes; must hash to bundle_digest
    bundle_digest: str
    policy_revision: str | None
    message: str

    @property
    def entry_id(self) -> str:
        return self.decision_id

    @property
    def unique_path(self) -> str:
        """The file whose presence means this decision is already recorded."""
        return record_path(self.decision_id)

    def shared_paths(self) -> list[str]:
        """Files stored once for many entries (evidence, the bundle): written only when absent."""
        return [*(evidence_path(sha256_hex(raw)) for _, raw in self.evidence),
                bundle_prefix(self.bundle_digest)]

    def files(self, seq: int, prev_entry: bytes | None, key: SigningKey | None,
              stored: set[str], now: datetime | None = None) -> tuple[dict[str, bytes], str]:
        """The files this decision adds after ``stored`` paths (and the entry's path)."""
        if not _ID.match(self.decision_id):
            raise LedgerError(f"invalid decision id {self.decision_id!r}")
        if files_digest(self.bundle) != self.bundle_digest:
            raise PolicyError("the policy bundle on disk no longer matches the digest it was "
                              "decided under; nothing recorded", advice="re-run the promotion")
        manifest = EntryManifest(
            seq=seq, prev=f"sha256:{sha256_hex(prev_entry)}" if prev_entry is not None else None,
            decision_id=self.decision_id, outcome=self.outcome,
            recorded_at=format_time(now or datetime.now(UTC)),
            record_sha256=sha256_hex(self.record), request_sha256=sha256_hex(self.request),
            evidence=tuple((ref, sha256_hex(raw)) for ref, raw in self.evidence),
            bundle_digest=self.bundle_digest, policy_revision=self.policy_revision,
            slmgate_version=slmgate_version(),
        )
        entry = entry_path(seq, self.decision_id)
        files = {entry: entry_envelope(manifest, key), record_path(self.decision_id): self.record,
                 request_path(self.decision_id): self.request}
        for _, raw in self.evidence:
            files.setdefault(evidence_path(sha256_hex(raw)), raw)
        prefix = bundle_prefix(self.bundle_digest)
        if prefix not in stored:
            files.update({prefix + rel: data for rel, data in self.bundle.items()})
        return {p: d for p, d in files.items() if p not in stored}, entry

    def message_for(self, seq: int, entry: bytes) -> str:
        return (f"{self.message.rstrip()}\n\nSlmgate-Seq: {seq}\n"
                f"Slmgate-Entry: sha256:{sha256_hex(entry)}\n")


class PendingEntry(Protocol):
    """What ``Ledger.record_pending`` appends: a ``PendingDecision`` or an attestation."""

    @property
    def entry_id(self) -> str: ...

    @property
    def unique_path(self) -> str: ...

    def shared_paths(self) -> list[str]: ...

    def files(self, seq: int, prev_entry: bytes | None, key: SigningKey | None,
              stored: set[str], now: datetime | None = None) -> tuple[dict[str, bytes], str]: ...

    def message_for(self, seq: int, entry: bytes) -> str: ...


_CORRUPT_WORDS = ("corrupt", "inflate", "bad object", "unable to unpack", "invalid object")


def _names_marker(repo: git.Repo) -> bool:
    """HEAD's tree names the marker (so a marker that cannot be read is a damaged object)."""
    try:
        repo.git.rev_parse("--verify", "-q", f"HEAD:{MARKER}")
        return True
    except git.GitCommandError:
        return False


def open_repo(path: Path) -> git.Repo:
    """The git repository of an existing ledger; ``LedgerError`` (exit 2) for anything else."""
    if not path.is_dir():
        raise LedgerError("no such ledger (not a directory)", file=str(path))
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise LedgerError("exists but is not a slmgate ledger (no git repository)",
                          file=str(path)) from exc
    if repo.working_tree_dir is None or Path(repo.working_tree_dir).resolve() != path.resolve():
        raise LedgerError("not a slmgate ledger (a folder inside another git repository)",
                          file=str(path))
    try:
        marker = repo.git.execute(["git", "cat-file", "blob", f"HEAD:{MARKER}"],
                                  stdout_as_string=False, strip_newline_in_stdout=False)
    except git.GitCommandError as exc:
        if _names_marker(repo) or any(w in str(exc.stderr).lower() for w in _CORRUPT_WORDS):
            raise LedgerCorrupted(f"the {MARKER} marker in HEAD cannot be read "
                                  f"({str(exc.stderr).strip()}); the ledger's objects are "
                                  "corrupted", file=str(path)) from exc
        raise LedgerError(f"git repository without a {MARKER} marker in HEAD; not a ledger",
                          file=str(path)) from exc
    if marker != MARKER_TEXT:
        raise LedgerError(f"unsupported ledger format ({marker[:40]!r}); this slmgate writes "
                          f"{MARKER_TEXT.decode().strip()!r}", file=str(path),
                          advice="start a new ledger; older ledgers have no hash chain")
    return repo


class Ledger:
    """A decision ledger at ``path``: created on first use, refused if it is some other folder.

    ``signing_key`` (the gate's key) signs each chain entry; without it the entries are unsigned
    and ``ledger verify`` accepts them only when told the chain may be unsigned."""

    def __init__(self, path: Path, *, signing_key: SigningKey | None = None) -> None:
        self.path = path
        self.signing_key = signing_key
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            _create(path)
        self.repo = open_repo(path)
        self.git_dir = Path(self.repo.git_dir)
        with self._locked():
            self._configure()
            self._recover(full=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = Path(self.repo.git_dir) / "slmgate.lock"
        with lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        try:
            return str(self.repo.git.execute(["git", *args], env=dict(env or {})))
        except git.GitCommandError as exc:
            raise LedgerError(f"git {args[0]} failed: {str(exc.stderr).strip() or exc}",
                              file=str(self.path)) from exc

    def _configure(self) -> None:
        """git settings that keep appends cheap: the untracked cache (a walk of the working tree
        rereads only folders whose mtime changed), index v4 (prefix-compressed paths) and the
        split index (``.git/index`` holds only the paths added since the shared index, which git
        rewrites when they pass a fifth of it: an append copies and rewrites kilobytes, not the
        whole index)."""
        with self.repo.config_reader() as cfg:
            missing = [(k, v) for k, v in _CONFIG if not cfg.has_option(*k.split("."))]
        if missing:
            with self.repo.config_writer() as writer:
                for k, v in missing:
                    writer.set_value(*k.split("."), v)

    def _index_stamp(self, commit: str) -> str:
        st = (self.git_dir / "index").stat()
        return f"{commit} {st.st_mtime_ns} {st.st_size}\n"

    def _index_is_heads(self, head: str) -> bool:
        """``.git/index`` is the one the last writer installed for ``head``, untouched since."""
        try:
            return (self.git_dir / _INDEXED).read_text() == self._index_stamp(head)
        except OSError:
            return False

    def _recover(self, *, full: bool, head: str | None = None) -> None:
        """Undo what an interrupted write left behind; the committed history is untouched.
        ``full`` also compares the index with HEAD and deletes untracked files under the
        ledger's folders (walks the working tree); otherwise that happens only when the index
        is not the one the last writer left for ``head``."""
        for name in _STALE_LOCKS:
            with contextlib.suppress(FileNotFoundError):
                (self.git_dir / name).unlink()
        for leftover in self.git_dir.glob("slmgate-index.*"):  # private indexes, not slmgate-indexed
            leftover.unlink(missing_ok=True)
        self._drop_journalled()
        if not full and head is not None and self._index_is_heads(head):
            return
        try:
            self.repo.git.execute(["git", "diff-index", "--cached", "--quiet", "HEAD", "--"])
        except git.GitCommandError:
            self._git("read-tree", "HEAD")
            with contextlib.suppress(git.GitCommandError):  # stat data, so git diff need not rehash
                self.repo.git.execute(["git", "update-index", "-q", "--refresh"])
        untracked = self._git("ls-files", "--others", "-z", "--", *FOLDERS)
        for rel in filter(None, untracked.split("\0")):
            (self.path / rel).unlink(missing_ok=True)
        head = self._git("rev-parse", "--verify", "HEAD^{commit}").strip()
        write_atomic(self.git_dir / _INDEXED, self._index_stamp(head).encode())

    def _drop_journalled(self) -> None:
        """Delete the files (and temp files) a killed writer journalled but never committed."""
        journal = self.git_dir / _JOURNAL
        try:
            paths = [p for p in journal.read_text().splitlines() if p]
        except FileNotFoundError:
            return
        committed = set(filter(None, self._git("ls-tree", "-r", "--name-only", "-z", "HEAD", "--",
                                               *paths).split("\0"))) if paths else set()
        for rel in paths:
            target = self.path / rel
            if rel not in committed:
                target.unlink(missing_ok=True)
            for tmp in target.parent.glob(f".{target.name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)

    def _stored(self, head: str, paths: Sequence[str]) -> set[str]:
        out = self._git("ls-tree", "--name-only", "-z", head, "--", *(p.rstrip("/") for p in paths))
        found = set(filter(None, out.split("\0")))
        return {p for p in paths if p.rstrip("/") in found}

    def _last_entry(self, head: str) -> tuple[int, bytes | None]:
        shards = [n for n in self._git("ls-tree", "--name-only", "-z", head, "--", "entries/")
                  .split("\0") if n]
        if not shards:
            return 0, None
        names = [n for n in self._git("ls-tree", "--name-only", "-z", head, "--", max(shards) + "/")
                 .split("\0") if n]
        last = max(names)
        try:
            raw = self.repo.git.execute(["git", "cat-file", "blob", f"{head}:{last}"],
                                        stdout_as_string=False, strip_newline_in_stdout=False)
        except git.GitCommandError as exc:
            raise LedgerError(f"cannot read the last chain entry {last}: {exc.stderr}",
                              file=str(self.path)) from exc
        return int(last.rsplit("/", 1)[1].split("-")[0]), bytes(raw)

    def record_pending(self, pending: PendingEntry) -> LedgerEntry:
        """Commit one decision (or attestation) atomically (see the module docstring)."""
        with self._locked():
            head = self._git("rev-parse", "--verify", "HEAD^{commit}").strip()
            self._recover(full=False, head=head)
            if self._stored(head, [pending.unique_path]):
                raise LedgerError(f"{pending.entry_id} is already recorded",
                                  file=str(self.path))
            seq, prev = self._last_entry(head)
            stored = self._stored(head, pending.shared_paths())
            files, entry = pending.files(seq + 1, prev, self.signing_key, stored)
            write_atomic(self.git_dir / _JOURNAL, "".join(f"{p}\n" for p in sorted(files)).encode())
            for rel, data in files.items():
                write_atomic(self.path / rel, data)
            index = self.git_dir / f"slmgate-index.{os.getpid()}"
            shutil.copyfile(self.git_dir / "index", index)
            env = {"GIT_INDEX_FILE": str(index), **_AUTHOR}
            self._git("update-index", "--add", "--", *sorted(files), env=env)
            tree = self._git("write-tree", env=env).strip()
            message = pending.message_for(seq + 1, files[entry])
            commit = self._git("commit-tree", tree, "-p", head, "-m", message, env=env).strip()
            self._git("update-ref", _BRANCH, commit, head)  # the commit point
            os.replace(index, self.git_dir / "index")
            write_atomic(self.git_dir / _INDEXED, self._index_stamp(commit).encode())
            (self.git_dir / _JOURNAL).unlink(missing_ok=True)
            if (seq + 1) % PACK_EVERY == 0:
                self.pack()
            return LedgerEntry(pending.entry_id, commit, pending.unique_path, seq + 1)

    def pack(self) -> None:
        """Pack the loose objects, keeping the packs in a geometric progression (so their
        number grows with the log of the ledger's size), and extend the commit-graph (so a walk
        of the history — `ledger log` finding each decision's commit — reads no commit object).
        The decision is already recorded: a failure here is logged, not raised."""
        for command in (["repack", "-d", "-q", "--geometric=2"],
                        ["commit-graph", "write", "--reachable", "--split"]):
            try:
                self.repo.git.execute(["git", *command])
            except git.GitCommandError as exc:
                _log.warning("ledger %s: git %s failed (%s); the decision is recorded",
                             self.path, command[0], str(exc.stderr).strip())

    def record(
        self, decision_id: str, record_envelope: bytes, request_raw: bytes,
        evidence: Sequence[tuple[str, bytes]], *, outcome: str, bundle: Mapping[str, bytes],
        bundle_digest: str, policy_revision: str | None, message: str,
    ) -> LedgerEntry:
        """Commit one decision; envelopes and bundles already in the ledger are not written again."""
        return self.record_pending(PendingDecision(
            decision_id, outcome, record_envelope, request_raw, tuple(evidence), bundle,
            bundle_digest, policy_revision, message))


def _create(path: Path) -> None:
    """Create a ledger beside ``path`` and rename it into place, so a killed creation leaves
    nothing that looks like a ledger, and two racing creators end with one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.creating.", dir=path.parent))
    try:
        repo = git.Repo.init(work, initial_branch="main")
        with repo.config_writer() as cfg:
            cfg.set_value("user", "name", _AUTHOR["GIT_AUTHOR_NAME"])
            cfg.set_value("user", "email", _AUTHOR["GIT_AUTHOR_EMAIL"])
            for key, value in _CONFIG:
                cfg.set_value(*key.split("."), value)
        write_atomic(work / MARKER, MARKER_TEXT)
        repo.git.execute(["git", "add", MARKER])
        repo.git.execute(["git", "commit", "-q", "-m", "ledger: create"], env=dict(_AUTHOR))
        repo.close()
        try:
            os.rename(work, path)
        except OSError:
            if not (path / ".git").exists():
                raise  # not a racing creator: something else is in the way
    finally:
        shutil.rmtree(work, ignore_errors=True)

