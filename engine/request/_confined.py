"""Reading the files a requester names: confined to a root, regular files only, capped in size,
and never a private key.

The requester controls the promotion request and every file beside it (README, "Threat model"),
while CI runs the gate with its signing key on the same machine. So a path in a request is
resolved against the request's own folder and must stay inside it (or inside ``--evidence-root``)
after every symbolic link is resolved; the file is opened with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO
cannot block the open, a link swapped in after the check is refused) and checked with ``fstat``
to be a regular file before one byte is read; at most ``cap`` bytes are read. Anything that
looks like a PEM or OpenSSH private key is refused outright, wherever it appears.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from pathlib import Path

from slmgate.evidence.errors import InputError

__all__ = ["confined_dir", "contains_private_key", "read_capped", "read_confined"]

# PEM (PKCS#1, PKCS#8, SEC1, encrypted PKCS#8) and OpenSSH private keys. Matched on the bytes
# as they are, after JSON unescaping of ``\/`` and ``\n``, and inside base64 runs.
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{64,}={0,2}")
# "-----BEGIN " in base64 starts with one of these, whatever its alignment in the run.
_B64_BEGIN = (b"LS0tLS1CRUdJTi", b"0tLS0tQkVHSU4g", b"tLS0tLUJFR0lOI")


def contains_private_key(data: bytes) -> bool:
    """True when ``data`` holds a private key: as PEM/OpenSSH text, JSON-escaped, or base64 of
    those (a DSSE payload, a key pasted into a field)."""
    if _PRIVATE_KEY.search(data) or _PRIVATE_KEY.search(data.replace(b"\\/", b"/")):
        return True
    if not any(marker in data for marker in _B64_BEGIN):
        return False
    for run in _B64_RUN.finditer(data):
        chunk = run.group()
        if not any(marker in chunk for marker in _B64_BEGIN):
            continue
        for offset in range(4):  # the key may start anywhere inside the encoded text
            piece = chunk[offset:]
            piece = piece[: len(piece) - len(piece) % 4]
            try:
                decoded = base64.b64decode(piece.replace(b"-", b"+").replace(b"_", b"/"))
            except (binascii.Error, ValueError):
                continue
            if _PRIVATE_KEY.search(decoded):
                return True
    return False


def _inside(base: Path, root: Path, rel: str, *, file: str, field: str) -> Path:
    if not rel or "\x00" in rel:
        raise InputError("expected a relative path", file=file, field=field)
    candidate = Path(rel)
    if candidate.is_absolute():
        raise InputError(f"absolute path {rel!r} refused: paths are relative to the request's "
                         "folder (or --evidence-root)", file=file, field=field)
    real_root = root.resolve()
    resolved = (base.resolve() / candidate).resolve()
    if resolved != real_root and real_root not in resolved.parents:
        raise InputError(f"path {rel!r} leaves {real_root} (through '..' or a symbolic link); "
                         "refused", file=file, field=field,
                         advice="keep evidence beside the request, or name a wider root with "
                                "--evidence-root")
    return resolved


def confined_dir(base: Path, root: Path, rel: str, *, file: str, field: str) -> Path:
    """The directory ``rel`` (relative to ``base``) names inside ``root``; it must exist and be
    a directory."""
    path = _inside(base, root, rel, file=file, field=field)
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        raise InputError(f"cannot open {rel!r} ({exc.strerror})", file=file, field=field) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{rel!r} is not a directory", file=file, field=field)
    return path


def read_capped(path: Path, cap: int, *, file: str, field: str | None, what: str) -> bytes:
    """The bytes of a regular file, refused before reading when it is anything else (FIFO,
    device, directory, a symbolic link as the last component) or larger than ``cap``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symbolic link
            raise InputError(f"{what} is a symbolic link; none is followed", file=file,
                             field=field) from exc
        raise InputError(f"cannot open {what} ({exc.strerror})", file=file, field=field) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} is not a regular file", file=file, field=field)
        if st.st_size > cap:
            raise InputError(f"{what} is {st.st_size} bytes, over the limit of {cap}", file=file,
                             field=field, advice="raise the limit with the matching --max-* "
                                                 "option if this is expected")
        chunks, size = [], 0
        while size <= cap:  # the file may grow after fstat: never read past the cap
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", file=file, field=field) from exc
    finally:
        os.close(fd)
    if size > cap:
        raise InputError(f"{what} grew past the limit of {cap} bytes while being read", file=file,
                         field=field)
    return b"".join(chunks)


def read_confined(base: Path, root: Path, rel: str, cap: int, *, file: str, field: str) -> bytes:
    """The bytes of the regular file ``rel`` (relative to ``base``), which must lie inside
    ``root``: at most ``cap`` of them, and never a private key."""
    path = _inside(base, root, rel, file=file, field=field)
    data = read_capped(path, cap, file=file, field=field, what=repr(rel))
    if contains_private_key(data):
        raise InputError(f"{rel!r} holds a private key; refused and not recorded", file=file,
                         field=field, advice="evidence is a signed DSSE envelope; keys stay in "
                                             "the vault")
    return data
