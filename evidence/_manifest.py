"""Weights manifests: per-file digests of a model directory and their root digest.

The format follows the OpenSSF model-signing v1.0 predicate (``serialization`` and
``resources``); the root digest is sha256 over the resources' raw digests in name order, so it
matches what ``model_signing`` puts in a statement's subject for the same directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

DEFAULT_IGNORED = (".git", ".gitattributes", ".github", ".gitignore")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResourceDigest:
    name: str  # POSIX path relative to the model directory
    algorithm: str
    digest: str  # hex


@dataclass(frozen=True)
class ManifestDiff:
    """Differences between an expected and an actual manifest, each sorted by name."""

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


@dataclass(frozen=True)
class WeightsManifest:
    model_name: str
    resources: tuple[ResourceDigest, ...]  # sorted by name
    ignore_paths: tuple[str, ...] = DEFAULT_IGNORED

    @property
    def root_digest(self) -> str:
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    def to_predicate(self, created_at: str) -> dict[str, Any]:
        return {
            "serialization": {
                "method": "files", "hash_type": "sha256", "allow_symlinks": False,
                "ignore_paths": list(self.ignore_paths),
            },
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.digest}
                for r in self.resources
            ],
            "created_at": created_at,
        }

    @classmethod
    def from_predicate(cls, model_name: str, predicate: dict[str, Any]) -> WeightsManifest:
        resources = tuple(
            sorted(
                (ResourceDigest(r["name"], r["algorithm"], r["digest"])
                 for r in predicate["resources"]),
                key=lambda r: r.name,
            )
        )
        ignore = tuple(predicate.get("serialization", {}).get("ignore_paths", DEFAULT_IGNORED))
        return cls(model_name, resources, ignore)

    def diff(self, actual: WeightsManifest) -> ManifestDiff:
        mine = {r.name: r.digest for r in self.resources}
        theirs = {r.name: r.digest for r in actual.resources}
        return ManifestDiff(
            extra=tuple(sorted(theirs.keys() - mine.keys())),
            missing=tuple(sorted(mine.keys() - theirs.keys())),
            changed=tuple(sorted(n for n in mine.keys() & theirs.keys() if mine[n] != theirs[n])),
        )


def _model_files(root: Path, ignore: Iterable[str]) -> list[Path]:
    ignored = set(ignore)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in ignored and not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            if name in ignored:
                continue
            if path.is_symlink():
                raise InputError(
                    "symbolic links are not hashed", file=str(path),
                    advice="copy the file into the model directory",
                )
            files.append(path)
    return files


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_model_dir(
    root: Path, *, model_name: str | None = None, workers: int | None = None
) -> WeightsManifest:
    """Hash every file under ``root`` (no symlinks, ``.git`` ignored) in parallel threads."""
    if not root.is_dir():
        raise InputError("not a model directory", file=str(root))
    files = _model_files(root, DEFAULT_IGNORED)
    if not files:
        raise InputError("model directory holds no files", file=str(root))
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        digests = list(pool.map(_hash_file, files))
    resources = tuple(
        sorted(
            (ResourceDigest(p.relative_to(root).as_posix(), "sha256", d)
             for p, d in zip(files, digests, strict=True)),
            key=lambda r: r.name,
        )
    )
    return WeightsManifest(model_name or root.resolve().name, resources)
