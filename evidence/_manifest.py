"""Weights manifests: the digests of a model directory's files (or file shards) and their root
digest, in the OpenSSF model-signing v1.0 predicate format.

Two serializations, as model-signing names them: ``files`` (one resource per file, named by its
POSIX path) and ``shards`` (one resource per ``shard_size`` slice of each non-empty file, named
``path:start:end``, algorithm ``sha256-sharded-<shard_size>``). Resources are ordered as
model-signing orders them (by path components, then shard offsets) and the root digest is
sha256 over their raw digests in that order, so a manifest and its root digest equal what
``model_signing.hashing`` computes for the same directory and serialization.

Hashing streams each file in bounded pieces (sha256: ``os.pread`` of ``chunk_size`` bytes;
blake3: one mapped window at a time) and hashes files or shards in parallel threads;
hashlib and blake3 release the GIL. Memory stays at about ``workers x chunk_size`` whatever
the model's size. Symbolic links are refused, never followed; ``.git`` and friends at the top
of the directory are ignored.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol, cast

from .errors import InputError

HashAlgorithm = Literal["sha256", "blake3"]
ALGORITHMS: tuple[HashAlgorithm, ...] = ("sha256", "blake3")
DEFAULT_IGNORED = (".git", ".gitattributes", ".github", ".gitignore")
# Bytes read (sha256) or mapped (blake3) at a time per thread; memory is bounded by workers x this.
DEFAULT_CHUNK_SIZE: dict[str, int] = {"sha256": 1 << 20, "blake3": 32 << 20}
ProgressCallback = Callable[[int, int], None]  # (bytes hashed so far, bytes in all)

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...
    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class ResourceDigest:
    """One manifest resource: a file (``path``) or a shard (``path:start:end``) and its digest."""

    name: str  # POSIX path relative to the model directory, with ``:start:end`` for a shard
    algorithm: str  # "sha256", "blake3" or "sha256-sharded-<shard_size>"
    digest: str  # hex

    def shard(self) -> tuple[str, int, int]:
        """``(path, start, end)`` of a shard resource; ``ValueError`` if the name is not one."""
        path, start, end = self.name.rsplit(":", 2)
        return path, int(start), int(end)


def _sort_key(resource: ResourceDigest, sharded: bool) -> tuple[tuple[str, ...], int, int]:
    """model-signing's order: path components (``PurePosixPath`` order), then shard offsets."""
    if sharded:
        path, start, end = resource.shard()
        return PurePosixPath(path).parts, start, end
    return PurePosixPath(resource.name).parts, 0, 0


@dataclass(frozen=True)
class ManifestDiff:
    """Files that differ between an expected and an actual manifest, each sorted by name.

    ``extra``: in the directory, not expected; ``missing``: expected, not in the directory;
    ``changed``: in both with other contents (for a sharded manifest: any shard differs).
    """

    extra: tuple[str, ...]
    missing: tuple[str, ...]
    changed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.extra or self.missing or self.changed)

    def describe(self) -> str:
        parts = [f"{label}: {', '.join(names)}"
                 for label, names in (("extra", self.extra), ("missing", self.missing),
                                      ("changed", self.changed)) if names]
        return "; ".join(parts) or "no differences"

    def to_json(self) -> dict[str, list[str]]:
        return {"extra": list(self.extra), "missing": list(self.missing),
                "changed": list(self.changed)}


@dataclass(frozen=True)
class WeightsManifest:
    """A model directory's resources and how they were serialized.

    Round-trip rule: ``WeightsManifest.from_predicate(m.model_name, m.to_predicate(t)) == m``
    for a manifest with resources in canonical order (as :func:`hash_model_dir` makes them).
    """

    model_name: str
    resources: tuple[ResourceDigest, ...]  # model-signing's canonical order
    ignore_paths: tuple[str, ...] = DEFAULT_IGNORED
    hash_type: str = "sha256"
    shard_size: int | None = None  # None: the "files" serialization

    @property
    def method(self) -> str:
        return "files" if self.shard_size is None else "shards"

    @property
    def root_digest(self) -> str:
        """sha256 over the resources' raw digests in order: the statement subject's digest."""
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    @property
    def serialization(self) -> dict[str, Any]:
        """The predicate's ``serialization`` object, with model-signing's fields."""
        doc: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type}
        if self.shard_size is not None:
            doc["shard_size"] = self.shard_size
        doc["allow_symlinks"] = False
        if self.ignore_paths:
            doc["ignore_paths"] = sorted(self.ignore_paths)
        return doc

    def to_predicate(self, created_at: str) -> dict[str, Any]:
        return {
            "serialization": self.serialization,
            "resources": [{"name": r.name, "algorithm": r.algorithm, "digest": r.digest}
                          for r in self.resources],
            "created_at": created_at,
        }

    @classmethod
    def from_predicate(cls, model_name: str, predicate: dict[str, Any]) -> WeightsManifest:
        """Read a v1.0 predicate. Raises ``KeyError``/``TypeError``/``ValueError`` when it is
        malformed (bad hex digests included)."""
        serialization = predicate.get("serialization", {})
        if not isinstance(serialization, dict):
            raise TypeError("serialization must be an object")
        method = serialization.get("method", "files")
        if method not in ("files", "shards"):
            raise ValueError(f"unknown serialization method {method!r}")
        shard_size = int(serialization["shard_size"]) if method == "shards" else None
        if shard_size is not None and shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        resources = []
        for r in predicate["resources"]:
            resource = ResourceDigest(str(r["name"]), str(r["algorithm"]), str(r["digest"]).lower())
            bytes.fromhex(resource.digest)  # ValueError when not hex
            resources.append(resource)
        # model-signing writes ignore_paths only when there are some: absent means none.
        ignore = tuple(sorted(str(p) for p in serialization.get("ignore_paths", ())))
        sharded = shard_size is not None  # a shard name that is not path:start:end: ValueError
        return cls(model_name, tuple(sorted(resources, key=lambda r: _sort_key(r, sharded))), ignore,
                   str(serialization.get("hash_type", "sha256")), shard_size)

    def _by_file(self) -> dict[str, tuple[tuple[str, str], ...]]:
        files: dict[str, list[tuple[str, str]]] = {}
        for r in self.resources:
            path = r.shard()[0] if self.shard_size is not None else r.name
            files.setdefault(path, []).append((r.name, r.digest))
        return {path: tuple(items) for path, items in files.items()}

    def diff(self, actual: WeightsManifest) -> ManifestDiff:
        """Compare with ``actual`` file by file. Both must use the same serialization (method,
        hash type, shard size), or every file would differ: ``ValueError`` then."""
        if (self.method, self.hash_type, self.shard_size) != (
                actual.method, actual.hash_type, actual.shard_size):
            raise ValueError(
                f"cannot compare a {self.method}/{self.hash_type} manifest with a "
                f"{actual.method}/{actual.hash_type} one; hash with the same serialization")
        mine, theirs = self._by_file(), actual._by_file()
        return ManifestDiff(
            extra=tuple(sorted(theirs.keys() - mine.keys())),
            missing=tuple(sorted(mine.keys() - theirs.keys())),
            changed=tuple(sorted(n for n in mine.keys() & theirs.keys() if mine[n] != theirs[n])),
        )


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class _Task:
    path: Path
    relative: str
    start: int
    end: int
    whole_file: bool  # the "files" serialization: the file must still have this size after


def _ignored(relative: str, ignore: frozenset[str]) -> bool:
    """True when ``relative`` is an ignored path or lies under one (model-signing's rule)."""
    parts = relative.split("/")
    return any("/".join(parts[:i]) in ignore for i in range(1, len(parts) + 1))


def _walk(root: Path, here: Path, ignore: frozenset[str]) -> Iterator[tuple[Path, str, int]]:
    try:
        with os.scandir(here) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list ({exc.strerror})", file=str(here)) from exc
    for entry in entries:
        path = Path(entry.path)
        relative = path.relative_to(root).as_posix()
        if _ignored(relative, ignore):
            continue
        if entry.is_symlink():
            raise InputError("symbolic links are not hashed (none is followed)",
                             file=str(path), advice="copy the file into the model directory")
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(root, path, ignore)
        elif entry.is_file(follow_symlinks=False):
            yield path, relative, entry.stat(follow_symlinks=False).st_size
        else:
            raise InputError("not a regular file or directory", file=str(path))


def _tasks(root: Path, ignore: Iterable[str], shard_size: int | None) -> list[_Task]:
    tasks: list[_Task] = []
    for path, relative, size in _walk(root, root, frozenset(p.strip("/") for p in ignore)):
        if shard_size is None:
            tasks.append(_Task(path, relative, 0, size, True))
            continue
        tasks.extend(_Task(path, relative, start, min(start + shard_size, size), False)
                     for start in range(0, size, shard_size))  # an empty file has no shard
    return tasks


# --------------------------------------------------------------------------- hashing


def _new_hasher(algorithm: HashAlgorithm) -> _Hasher:
    if algorithm == "sha256":
        return cast(_Hasher, hashlib.sha256())
    import blake3

    # Inside one file blake3 spreads large updates over the cores; the GIL is released.
    return cast(_Hasher, blake3.blake3(max_threads=blake3.blake3.AUTO))


class _Reader:
    """Hashes byte ranges of files, in bounded pieces.

    sha256 reads ``chunk_size`` bytes at a time with ``os.pread``, a fresh bytes object each
    time: on the 2-core VM of bench/RESULTS-hash.md, ``readinto`` a reused ``bytearray`` cost
    five times the kernel time, and mapping saved nothing. blake3 hashes mapped windows
    instead: one large update lets it spread a window over every core with no serial copy in
    between, as fast as mapping the whole file (model-signing's way) while mapping only
    ``chunk_size`` at a time. A file truncated while mapped raises SIGBUS: the process dies,
    it never returns a wrong digest.
    """

    def __init__(self, algorithm: HashAlgorithm, chunk_size: int, total: int,
                 progress: ProgressCallback | None) -> None:
        self._algorithm = algorithm
        self._chunk_size = chunk_size
        self._mapped = algorithm == "blake3"
        self._lock = threading.Lock()
        self._done = 0
        self._total = total
        self._progress = progress

    def _advance(self, n: int) -> None:
        if self._progress is not None:
            with self._lock:
                self._done += n
                self._progress(self._done, self._total)

    def _read(self, fd: int, hasher: _Hasher, start: int, end: int) -> int:
        offset = start
        while offset < end:
            data = os.pread(fd, min(self._chunk_size, end - offset), offset)
            n = len(data)
            hasher.update(data)
            del data  # before the next read: one chunk per thread alive at a time
            if not n:
                break
            offset += n
            self._advance(n)
        return offset

    def _map(self, fd: int, hasher: _Hasher, start: int, end: int) -> int:
        offset = start
        while offset < end:
            base = offset - offset % mmap.ALLOCATIONGRANULARITY
            length = min(end, offset + self._chunk_size) - offset
            window = mmap.mmap(fd, offset - base + length, access=mmap.ACCESS_READ, offset=base)
            try:
                with memoryview(window) as view, view[offset - base:] as part:
                    hasher.update(part)
            finally:
                window.close()
            offset += length
            self._advance(length)
        return offset

    def hash(self, task: _Task) -> str:
        """Hex digest of the bytes ``[task.start, task.end)`` of ``task.path``."""
        try:
            fd = os.open(task.path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError as exc:
            raise InputError(f"cannot open ({exc.strerror})", file=str(task.path)) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InputError("no longer a regular file", file=str(task.path))
            if info.st_size < task.end:
                raise InputError(f"shrank while being hashed ({info.st_size} bytes, "
                                 f"{task.end} when listed)", file=str(task.path),
                                 advice="hash a directory nobody writes to")
            hasher = _new_hasher(self._algorithm)
            read = (self._map if self._mapped else self._read)(fd, hasher, task.start, task.end)
            if read < task.end or (task.whole_file and os.fstat(fd).st_size != task.end):
                raise InputError("changed size while being hashed", file=str(task.path),
                                 advice="hash a directory nobody writes to")
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", file=str(task.path)) from exc
        finally:
            os.close(fd)
        return hasher.digest().hex()


def default_workers(algorithm: HashAlgorithm, tasks: int) -> int:
    """Threads to use, never more than there are files or shards: for sha256 the cores plus 4
    (``ThreadPoolExecutor``'s default: uneven shards still keep every core busy, and reads
    from a cold disk overlap), for blake3 the cores (it also parallelises inside a file)."""
    cores = os.cpu_count() or 1
    wanted = min(32, cores + 4) if algorithm == "sha256" else cores
    return max(1, min(wanted, tasks))


def hash_model_dir(
    root: Path,
    *,
    model_name: str | None = None,
    algorithm: HashAlgorithm = "sha256",
    shard_size: int | None = None,
    ignore_paths: Iterable[str] = DEFAULT_IGNORED,
    workers: int | None = None,
    chunk_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> WeightsManifest:
    """Hash every file under ``root`` into a manifest, per file or (``shard_size``) per shard.

    No symbolic link is followed: one anywhere in the tree (outside the ignored paths) is an
    :class:`InputError`, as is the root being one, a special file, an empty directory, an
    unknown algorithm, or blake3 with a shard size (model-signing never shards blake3; it
    parallelises inside a file). ``progress`` is called as bytes are hashed, from one thread at
    a time.
    """
    root = Path(root)
    if algorithm not in ALGORITHMS:
        raise InputError(f"unknown hash algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if shard_size is not None and shard_size <= 0:
        raise InputError(f"shard size must be a positive number of bytes, got {shard_size}")
    if shard_size is not None and algorithm == "blake3":
        raise InputError("blake3 is not sharded: it already hashes one file on every core",
                         advice="drop --shard-size (model-signing serializes blake3 per file too)")
    chunk_size = DEFAULT_CHUNK_SIZE[algorithm] if chunk_size is None else chunk_size
    if chunk_size <= 0:
        raise InputError(f"chunk size must be positive, got {chunk_size}")
    if root.is_symlink():
        raise InputError("the model directory is a symbolic link; none is followed",
                         file=str(root), advice="pass the directory it points to")
    if not root.is_dir():
        raise InputError("not a model directory", file=str(root))
    ignore = tuple(sorted({p.strip("/") for p in ignore_paths}))
    tasks = _tasks(root, ignore, shard_size)
    if not tasks:
        raise InputError("model directory holds no files to hash", file=str(root))
    reader = _Reader(algorithm, chunk_size, sum(t.end - t.start for t in tasks), progress)
    order = sorted(range(len(tasks)), key=lambda i: tasks[i].start - tasks[i].end)  # big first
    threads = workers or default_workers(algorithm, len(tasks))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slmgate-hash") as pool:
        futures = {i: pool.submit(reader.hash, tasks[i]) for i in order}
        digests = [futures[i].result() for i in range(len(tasks))]
    if shard_size is None:
        resources = [ResourceDigest(t.relative, algorithm, d)
                     for t, d in zip(tasks, digests, strict=True)]
    else:
        kind = f"{algorithm}-sharded-{shard_size}"
        resources = [ResourceDigest(f"{t.relative}:{t.start}:{t.end}", kind, d)
                     for t, d in zip(tasks, digests, strict=True)]
    return WeightsManifest(model_name or root.resolve().name,
                           tuple(sorted(resources, key=lambda r: _sort_key(r, shard_size is not None))),
                           ignore, algorithm, shard_size)
