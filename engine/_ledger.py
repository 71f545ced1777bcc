"""The ledger: a git repository with one commit per decision — the signed decision record, the
request and the evidence envelopes it used (content-addressed, stored once)."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from slmgate.evidence import write_atomic
from slmgate.evidence.errors import InputError

_AUTHOR = git.Actor("slmgate", "slmgate@localhost")
_MARKER = "slmgate-ledger"


@dataclass(frozen=True)
class LedgerEntry:
    decision_id: str
    commit: str
    record_path: str


class Ledger:
    """A decision ledger at ``path``; created on first use, refused if it is some other repo."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and any(path.iterdir()):
            try:
                self.repo = git.Repo(path)
            except git.InvalidGitRepositoryError as exc:
                raise InputError("exists but is not a slmgate ledger (no git repository)",
                                 file=str(path)) from exc
            if not (path / _MARKER).is_file():
                raise InputError(f"git repository without a {_MARKER} marker; not a ledger",
                                 file=str(path))
        else:
            path.mkdir(parents=True, exist_ok=True)
            self.repo = git.Repo.init(path, initial_branch="main")
            with self.repo.config_writer() as cfg:
                cfg.set_value("user", "name", _AUTHOR.name)
                cfg.set_value("user", "email", _AUTHOR.email)
            write_atomic(path / _MARKER, b"slmgate decision ledger v1\n")
            self.repo.index.add([_MARKER])
            self.repo.index.commit("ledger: create", author=_AUTHOR, committer=_AUTHOR)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = Path(self.repo.git_dir) / "slmgate.lock"
        with lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def record(
        self, decision_id: str, record_envelope: bytes, request_raw: bytes,
        evidence: Sequence[bytes], message: str,
    ) -> LedgerEntry:
        """Commit one decision; envelopes already in the ledger are not written again."""
        with self._locked():
            paths = []
            for raw in evidence:
                rel = f"evidence/sha256/{hashlib.sha256(raw).hexdigest()}.dsse.json"
                if not (self.path / rel).exists():
                    write_atomic(self.path / rel, raw)
                paths.append(rel)
            record_rel = f"decisions/{decision_id}.dsse.json"
            request_rel = f"requests/{decision_id}.json"
            if (self.path / record_rel).exists():
                raise InputError(f"decision {decision_id} is already recorded", file=str(self.path))
            write_atomic(self.path / request_rel, request_raw)
            write_atomic(self.path / record_rel, record_envelope)
            self.repo.index.add([*sorted(set(paths)), request_rel, record_rel])
            commit = self.repo.index.commit(message, author=_AUTHOR, committer=_AUTHOR)
            return LedgerEntry(decision_id, commit.hexsha, record_rel)
