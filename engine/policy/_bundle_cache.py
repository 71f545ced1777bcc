"""The validated policy bundle, kept between processes: what ``load_bundle`` concluded from a
bundle's bytes, so that the next process holding the same bytes skips the YAML parse, the
cerberus validation and the cross-reference checks (about a fifth of a `slmgate promote`).

An entry is found by the digest of the bundle's YAML documents, its Rego modules and what
validation depends on in slmgate itself (``key``, computed by ``_bundle``); it
names the key files trust.yaml pointed at and the digest over all of them (the bundle digest a
decision records). It is used only when the files read now hash to that digest, so a changed
byte anywhere — a YAML document, a module, a public key — means a miss and a full validation;
and only what validated is ever written. The data is kept as JSON with the places of its dates
listed beside it, read back to the same Python values.

Where: ``$SLMGATE_CACHE_DIR/bundles``, and only when that variable names a folder: the cache is
**off unless asked for**. Whoever can write an entry decides what a bundle validated to — its
gates, tiers and trust identities — without touching the reviewed policy files, so a cache
directory shared with jobs a requester controls (a CI cache restored across branches, say)
would let a requester loosen the gate; it must be enabled only where the folder is as protected
as the policy repository. Without it a `slmgate promote` still takes ~0.3 s (docs/benchmarks.md,
issue 13), so the gate's default does not lean on it. Like ssh with its keys, an entry is read only
from a folder and a file that belong to the user running slmgate and that nobody else may write
(the data in it decides promotions); anything else, or an entry that does not read back, is a
miss. Entries are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "lookup", "store"]

_FORMAT = 1
Place = list[str | int]


def cache_dir() -> Path | None:
    """The folder of the bundle cache, or ``None`` when it is off (``SLMGATE_CACHE_DIR`` unset or
    empty: the default)."""
    configured = os.environ.get("SLMGATE_CACHE_DIR")
    return Path(configured) / "bundles" if configured else None


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _encode(value: Any, place: Place, dates: list[tuple[Place, str, str]]) -> Any:
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a key that is not a string")
        return {k: _encode(v, [*place, k], dates) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v, [*place, i], dates) for i, v in enumerate(value)]
    if isinstance(value, datetime):
        dates.append((place, "datetime", value.isoformat()))
        return None
    if isinstance(value, date):
        dates.append((place, "date", value.isoformat()))
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a {type(value).__name__}")


def _decode(data: Any, dates: list[Any]) -> Any:
    for place, kind, text in dates:
        parent = data
        for step in place[:-1]:
            parent = parent[step]
        parent[place[-1]] = (datetime if kind == "datetime" else date).fromisoformat(text)
    return data


def lookup(key: str) -> dict[str, Any] | None:
    """The entry stored under ``key`` (a bundle digest), or ``None``: absent, unreadable, not
    the user's own, or written by another format."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key.removeprefix('sha256:')}.json"
    try:
        st = path.lstat()
        if not (_private(folder.stat()) and _private(st) and stat.S_ISREG(st.st_mode)):
            return None
        entry = json.loads(path.read_bytes())
        if not isinstance(entry, dict) or entry.get("format") != _FORMAT or entry.get("key") != key:
            return None
        if not isinstance(entry.get("keys"), list) or not isinstance(entry.get("digest"), str):
            return None
        entry["data"] = _decode(entry["data"], entry["dates"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return entry


def store(key: str, *, digest: str, keys: list[str], data: dict[str, Any]) -> None:
    """Keep what a bundle validated to (best effort: a cache that cannot be written is none)."""
    folder = cache_dir()
    if folder is None:
        return
    dates: list[tuple[Place, str, str]] = []
    try:
        doc = {"format": _FORMAT, "key": key, "digest": digest, "keys": keys,
               "data": _encode(data, [], dates)}
        doc["dates"] = dates
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError):
        return  # something JSON does not hold: this bundle is validated every time
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(folder.stat()):
            return
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(text)
            os.replace(tmp, folder / f"{key.removeprefix('sha256:')}.json")
        except OSError:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        return
