"""The ledger's rebuildable index: ``.slmgate/index.sqlite`` inside the ledger folder, one row per
chain entry — sequence number, kind, id, entry path, and for a decision its outcome, model name
and evaluation time — so that `ledger log` filters in SQL, `ledger replay ID` finds its entry
without listing the tree, and what-if gets the chain in order without reading every tree.

The index is derived data and never trusted:

- it is git-ignored (``.git/info/exclude``) and never committed; deleting it costs a rebuild;
- it records the commit it was brought up to (``head``); on use it is brought up to the commit
  being read — incrementally (only the entries ``git diff-tree`` shows added since) when its
  head is an ancestor of that commit, rebuilt from git otherwise, and rebuilt too when it is
  missing, unreadable, of another schema, or changed since slmgate last wrote it (its size,
  mtime, ctime and inode are kept in ``.slmgate/index.stamp``; ctime cannot be set back, so an
  edit through another tool is noticed);
- it must hold exactly the entries 1..N of the commit read (N read from git), or it is rebuilt;
- every row it returns is re-checked before use: the row's entry path must be in the commit's
  tree (read from git) and the entry stored there must carry the row's sequence number, id and
  outcome, its decision record the row's model and evaluation time; the decision's files are
  then checked against the digests the entry names (``LedgerHistory.load_many``) and the
  caller re-applies its filters to what was read. A row that fails is an ``IndexMismatch``: the
  index is rebuilt from git and the query resumed after the last row already used; a row that
  still fails after the rebuild fails closed (``LedgerError``).

What the re-check cannot see is a row left out of a *filtered* answer because its filter fields
(model, outcome, time) were forged together with the stamp — whoever can do that can as well
rewrite the ledger's git objects, which is what ``ledger verify`` and signed checkpoints catch;
``ledger verify`` never reads the index. An unfiltered ``ledger log`` is complete regardless
(every sequence number 1..N is present and each row is checked).

Concurrency: whoever brings the index up to date holds ``.slmgate/index.lock`` (flock); a
catch-up is one SQLite transaction; a rebuild writes a new file and renames it into place.
Readers take their rows in one query and close the connection, so a rebuild never pulls a file
from under a reader, and a reader of an older commit simply reads the rows up to its N. The
ledger's writer never touches the index: the next reader catches it up.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from slmgate.engine.ledger._attestation import ATTESTATION_SUFFIX
from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision, record_decision
from slmgate.engine.ledger._store import (
    EntryManifest,
    LedgerError,
    entry_path,
    entry_payload,
    record_path,
)
from slmgate.evidence import parse_time

INDEX_DIR = ".slmgate"
INDEX_FILE = "index.sqlite"
SCHEMA = "slmgate ledger index v1"
_log = logging.getLogger("slmgate")
_ENTRY = re.compile(r"^entries/\d{6}/(\d{8})-([^/]+)\.dsse\.json$")
_SAFE_PREFIX = re.compile(r"^[A-Za-z0-9._-]+$")  # no GLOB metacharacters
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chain (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,            -- 'decision', or the kind of attestation
    entry_id TEXT NOT NULL,
    path TEXT NOT NULL,
    outcome TEXT,
    model TEXT,
    evaluated_at TEXT,
    evaluated_us INTEGER           -- evaluated_at in microseconds since 1970 (UTC)
);
CREATE INDEX chain_entry_id ON chain (entry_id);
CREATE INDEX chain_model ON chain (model, seq);
CREATE INDEX chain_time ON chain (evaluated_us);
"""


class IndexMismatch(LedgerError):
    """A row of the index does not say what the ledger's git objects say (tampered or stale)."""


@dataclass(frozen=True)
class IndexRow:
    seq: int
    kind: str
    entry_id: str
    path: str
    outcome: str | None = None
    model: str | None = None
    evaluated_at: str | None = None
    evaluated_us: int | None = None

    @property
    def is_decision(self) -> bool:
        return self.kind == "decision"


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _time_us(text: str | None) -> int | None:
    try:
        return _micros(parse_time(text, what="evaluated_at")) if text else None
    except ValueError:
        return None


def _decision_fields(decision: dict[str, Any]) -> tuple[str | None, str | None]:
    """The model name and evaluation time of a decision (``None`` where absent)."""
    model = ((decision.get("request") or {}).get("model") or {}).get("name")
    when = decision.get("evaluated_at")
    return (str(model) if model is not None else None, str(when) if when is not None else None)


class ChainIndex:
    """The index of the ledger ``history`` reads, brought up to ``history.commit``."""

    def __init__(self, history: LedgerHistory) -> None:
        self.history = history
        self.folder = history.path / INDEX_DIR
        self.file = self.folder / INDEX_FILE
        self.stamp = self.folder / "index.stamp"
        self.count = _chain_length(history)  # N: the entries of history.commit
        self.rebuilds = 0

    @classmethod
    def open(cls, history: LedgerHistory) -> ChainIndex | None:
        """The index, up to date; ``None`` when it cannot be kept (a read-only ledger folder,
        a broken SQLite library): the caller then reads git alone."""
        index = cls(history)
        try:
            index.refresh()
        except (OSError, sqlite3.Error) as exc:
            _log.info("ledger %s: no index (%s); reading git alone", history.path, exc)
            return None
        return index

    # -- keeping it up to date ------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        self.folder.mkdir(exist_ok=True)
        _exclude(self.history)
        with (self.folder / "index.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _stamp_text(self) -> str:
        st = self.file.stat()
        return f"{SCHEMA}\n{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}\n"

    def _untouched(self) -> bool:
        try:
            return self.stamp.read_text() == self._stamp_text()
        except OSError:
            return False

    def refresh(self, *, rebuild: bool = False) -> None:
        """Bring the index up to ``history.commit`` (see the module docstring)."""
        with self._writing():
            head = None if rebuild or not self._untouched() else self._head()
            if head is None:
                self._rebuild()
            elif head != self.history.commit:
                if _is_ancestor(self.history, head, self.history.commit):
                    self._catch_up(head)
                elif not _is_ancestor(self.history, self.history.commit, head):
                    self._rebuild()
            if not self._complete():
                self._rebuild()
            self.stamp.write_text(self._stamp_text())

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        return sqlite3.connect(path or self.file, timeout=60, isolation_level=None)

    def _head(self) -> str | None:
        """The commit the index was brought up to; ``None`` when it is not a usable index."""
        try:
            with contextlib.closing(self._connect()) as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error:
            return None
        return meta.get("head") if meta.get("schema") == SCHEMA else None

    def _complete(self) -> bool:
        """The index holds exactly the entries 1..N (and is readable at all)."""
        try:
            with contextlib.closing(self._connect()) as db:
                n, low, high = db.execute("SELECT count(*), min(seq), max(seq) FROM chain "
                                          "WHERE seq <= ?", (self.count,)).fetchone()
        except sqlite3.Error:
            return False
        return n == self.count and (n == 0 or (low, high) == (1, self.count))

    def _rebuild(self) -> None:
        self.rebuilds += 1
        tmp = self.folder / f"{INDEX_FILE}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            with contextlib.closing(self._connect(tmp)) as db:
                db.executescript(_DDL)
                self._insert(db, self.history.listing("entries/", "decisions/"))
            os.replace(tmp, self.file)
        finally:
            tmp.unlink(missing_ok=True)

    def _catch_up(self, head: str) -> None:
        added = _added_since(self.history, head)
        with contextlib.closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._insert(db, added, replace=True)
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _insert(self, db: sqlite3.Connection, files: dict[str, str], *, replace: bool = False) -> None:
        """Rows for every chain entry among ``files`` (path -> blob id), the decisions' fields read
        from their entries and records; then ``head`` := the history's commit. Commits itself."""
        if not db.in_transaction:
            db.execute("BEGIN")
        entries = sorted((int(m[1]), m[2], p) for p in files if (m := _ENTRY.match(p)))
        for start in range(0, len(entries), 2000):
            chunk = entries[start:start + 2000]
            decisions = [(seq, p) for seq, name, p in chunk if not p.endswith(ATTESTATION_SUFFIX)]
            raws = self.history.read_blobs((files[p] for _, p in decisions), "chain entries")
            manifests = {p: EntryManifest.from_payload(entry_payload(raws[files[p]])[0])
                         for _, p in decisions}
            records = self.history.read_blobs(
                (files[record_path(m.decision_id)] for m in manifests.values()
                 if record_path(m.decision_id) in files), "decision records")
            rows: list[tuple[object, ...]] = []
            for seq, name, p in chunk:
                if p.endswith(ATTESTATION_SUFFIX):
                    rows.append((seq, "attestation", name.removesuffix(".attestation"), p,
                                 None, None, None, None))
                    continue
                m = manifests[p]
                blob = files.get(record_path(m.decision_id))
                model, when = _decision_fields(record_decision(records[blob])) if blob else (None, None)
                rows.append((seq, "decision", m.decision_id, p, m.outcome, model, when,
                             _time_us(when)))
            verb = "INSERT OR REPLACE" if replace else "INSERT"
            db.executemany(f"{verb} INTO chain VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?), ('head', ?)",
                   (SCHEMA, self.history.commit))
        db.execute("COMMIT")

    # -- queries -------------------------------------------------------------------------------

    def _rows(self, where: str = "", params: Sequence[object] = (),
              limit: int | None = None) -> list[IndexRow]:
        try:
            with contextlib.closing(self._connect()) as db:
                found = db.execute(
                    "SELECT seq, kind, entry_id, path, outcome, model, evaluated_at, evaluated_us "
                    f"FROM chain WHERE seq <= ? {where} ORDER BY seq LIMIT ?",
                    (self.count, *params, -1 if limit is None else limit)).fetchall()
            return [IndexRow(*row) for row in found]
        except (sqlite3.Error, TypeError) as exc:  # a damaged file, a row of the wrong shape
            raise IndexMismatch(f"the index cannot be read ({exc})", file=str(self.file)) from exc

    def decisions(self, *, model: str | None = None, outcomes: Iterable[str] = (),
                  since: datetime | None = None, until: datetime | None = None,
                  after: int = 0, limit: int | None = None) -> list[IndexRow]:
        """The decisions the filters select after sequence number ``after``, oldest first, at
        most ``limit`` of them (rows not yet checked)."""
        where: list[str] = ["AND kind = 'decision' AND seq > ?"]
        params: list[object] = [after]
        if model is not None:
            where.append("AND model = ?")
            params.append(model)
        wanted = sorted(set(outcomes))
        if wanted:
            where.append(f"AND outcome IN ({', '.join('?' * len(wanted))})")
            params += wanted
        # a time that could not be read is selected, so that the caller's check refuses it
        if since is not None:
            where.append("AND (evaluated_us IS NULL OR evaluated_us >= ?)")
            params.append(_micros(since))
        if until is not None:
            where.append("AND (evaluated_us IS NULL OR evaluated_us <= ?)")
            params.append(_micros(until))
        return self._rows(" ".join(where), params, limit)

    def named(self, decision_id: str) -> list[IndexRow]:
        """The decisions with this id, or else with ids starting with it (8 characters at least)."""
        exact = self._rows("AND kind = 'decision' AND entry_id = ?", (decision_id,))
        if exact or len(decision_id) < 8 or not _SAFE_PREFIX.match(decision_id):
            return exact
        return self._rows("AND kind = 'decision' AND entry_id GLOB ?", (decision_id + "*",))

    # -- checked reads -------------------------------------------------------------------------

    def load(self, rows: Sequence[IndexRow]) -> list[RecordedDecision]:
        """The decisions of ``rows``, each row re-checked against git (``IndexMismatch``)."""
        for row in rows:
            if not row.is_decision or row.path != entry_path(row.seq, row.entry_id):
                raise IndexMismatch(f"index row {row.seq} names {row.path!r}, not the entry "
                                    f"path of decision {row.entry_id!r}")
        located = self.history.locate(row.path for row in rows)
        for row in rows:
            if row.path not in located:
                raise IndexMismatch(f"index row {row.seq}: {row.path} is not in commit "
                                    f"{self.history.commit[:12]}")
        loaded = self.history.load_many([row.path for row in rows])
        for row, recorded in zip(rows, loaded, strict=True):
            m = recorded.manifest
            model, when = _decision_fields(recorded.decision)
            said = (row.seq, row.entry_id, row.outcome, row.model, row.evaluated_at, row.evaluated_us)
            truth = (m.seq, m.decision_id, m.outcome, model, when, _time_us(when))
            if said != truth:
                raise IndexMismatch(f"index row {row.seq} says {said}, the ledger {truth}")
        return loaded


def _chain_length(history: LedgerHistory) -> int:
    """The sequence number of the newest chain entry of the history's commit (0 when none),
    from two small tree listings."""
    shards = [p.rsplit("/", 1)[-1] for p in _ls_names(history, "entries/")]
    if not shards:
        return 0
    names = [p.rsplit("/", 1)[-1] for p in _ls_names(history, f"entries/{max(shards)}/")]
    seqs = [int(n.split("-", 1)[0]) for n in names if n[:8].isdigit()]
    return max(seqs, default=0)


def _ls_names(history: LedgerHistory, folder: str) -> list[str]:
    out = history.git("ls-tree", "--name-only", "-z", "--full-tree", history.commit, "--", folder)
    return [n for n in out.decode().split("\0") if n]


def _is_ancestor(history: LedgerHistory, older: str, newer: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer],
                          cwd=history.repo.git_dir, capture_output=True, check=False).returncode == 0


def _added_since(history: LedgerHistory, head: str) -> dict[str, str]:
    """The chain entries and decision records added between ``head`` and the history's commit:
    path -> blob id (a tree diff: only the folders that changed are read)."""
    out = history.git("diff-tree", "-r", "-z", "--no-renames", "--diff-filter=A", head,
                      history.commit, "--", "entries/", "decisions/").decode()
    tokens = out.split("\0")
    return {tokens[i + 1]: tokens[i].split()[3] for i in range(0, len(tokens) - 1, 2)
            if tokens[i].startswith(":")}


def _exclude(history: LedgerHistory) -> None:
    """Keep the index out of git: ``/.slmgate/`` in ``.git/info/exclude`` (not committed)."""
    exclude = Path(history.repo.git_dir) / "info" / "exclude"
    line = f"/{INDEX_DIR}/"
    try:
        text = exclude.read_text()
    except FileNotFoundError:
        text = ""
    if line not in text.splitlines():
        exclude.parent.mkdir(exist_ok=True)
        exclude.write_text(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n")


# -- what the commands use --------------------------------------------------------------------


def indexed_decisions(history: LedgerHistory, *, model: str | None = None,
                      outcomes: Iterable[str] = (), since: datetime | None = None,
                      until: datetime | None = None, first: int = 20,
                      batch: int = 500) -> Iterator[RecordedDecision]:
    """The decisions the filters select, oldest first, each row checked; read in batches (a small
    first one, so that a streaming reader shows something at once). Without an index, the
    decisions of git alone (the caller's filters decide). On a row that does not check out, the
    index is rebuilt and the query resumed after the last decision yielded; a second failure
    fails closed."""
    index = ChainIndex.open(history)
    wanted = set(outcomes)
    if index is None:
        yield from history.decisions(keep=(lambda m: m.outcome in wanted) if wanted else None)
        return
    last, size = 0, first
    for attempt in (1, 2):
        try:
            while rows := index.decisions(model=model, outcomes=wanted, since=since, until=until,
                                          after=last, limit=size):
                for recorded in index.load(rows):
                    yield recorded
                    last = recorded.manifest.seq
                size = batch
            return
        except IndexMismatch as exc:
            if attempt == 2:
                raise LedgerError(f"the ledger index still disagrees with git after a rebuild "
                                  f"({exc.detail}); nothing more is read from it",
                                  file=str(index.file)) from exc
            _log.warning("ledger %s: %s; rebuilding the index from git", history.path, exc.detail)
            index.refresh(rebuild=True)


def resolve_decision(history: LedgerHistory, decision_id: str) -> str:
    """The entry path of a decision id (or of a unique prefix of one, 8 characters at least),
    found through the index and checked against git; when the index finds none, or cannot be
    kept, the answer is git's own (``LedgerHistory.resolve``)."""
    index = ChainIndex.open(history)
    if index is None:
        return history.resolve(decision_id)
    for attempt in (1, 2):
        try:
            rows = index.named(decision_id)
            index.load(rows)
        except IndexMismatch as exc:
            if attempt == 2:
                raise LedgerError(f"the ledger index still disagrees with git after a rebuild "
                                  f"({exc.detail})", file=str(index.file)) from exc
            _log.warning("ledger %s: %s; rebuilding the index from git", history.path, exc.detail)
            index.refresh(rebuild=True)
            continue
        if len(rows) == 1:
            return rows[0].path
        break
    return history.resolve(decision_id)  # none or several: git's listing says which, and why
