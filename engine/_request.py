"""Promotion requests: what changes, against which baseline, with which signed evidence."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from slmgate.evidence import canonical_json
from slmgate.evidence.errors import InputError

from ._schemas import check_document


@dataclass(frozen=True)
class EvidenceFile:
    ref: str
    path: Path
    raw: bytes


@dataclass(frozen=True)
class PromotionRequest:
    path: Path
    doc: dict[str, Any]
    raw: bytes
    evidence: tuple[EvidenceFile, ...]

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def weights_sha256(self) -> str:
        return str(self.doc["model"]["weights_digest"]).removeprefix("sha256:")

    @property
    def baseline_sha256(self) -> str:
        return str(self.doc["baseline"]["weights_digest"]).removeprefix("sha256:")

    @property
    def approval_digest(self) -> str:
        return approval_digest(self.doc)

    def model_dir(self) -> Path | None:
        rel = self.doc["model"].get("path")
        return (self.path.parent / rel) if rel else None


def approval_digest(doc: dict[str, Any]) -> str:
    """What an approval signs: sha256 of the canonical request without its evidence list (the
    approvals themselves are part of that list)."""
    body = {k: v for k, v in doc.items() if k != "evidence"}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def _parse(raw: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", file=source) from exc
    check_document(doc, "promotion-request", source=source)
    refs = [e["ref"] for e in doc["evidence"]]
    dupes = sorted({r for r in refs if refs.count(r) > 1})
    if dupes:
        raise InputError(f"evidence refs must be unique, repeated: {dupes}", file=source,
                         field="evidence")
    for i, item in enumerate(doc.get("training_data", [])):
        try:
            date.fromisoformat(item["oldest_record"])
        except ValueError as exc:
            raise InputError(f"not a calendar date: {item['oldest_record']!r}", file=source,
                             field=f"training_data.{i}.oldest_record") from exc
    return doc  # type: ignore[no-any-return]


def request_from_parts(raw: bytes, evidence: dict[str, bytes], *, source: str) -> PromotionRequest:
    """A request rebuilt from recorded bytes (a ledger entry, a packet's attachments): the
    evidence comes by ref instead of by path. Used for replay and re-verification."""
    doc = _parse(raw, source)
    files = []
    for i, item in enumerate(doc["evidence"]):
        if item["ref"] not in evidence:
            raise InputError(f"recorded evidence {item['ref']!r} is missing", file=source,
                             field=f"evidence.{i}")
        files.append(EvidenceFile(item["ref"], Path(item["path"]), evidence[item["ref"]]))
    return PromotionRequest(Path(source), doc, raw, tuple(files))


def load_request(path: Path) -> PromotionRequest:
    """Read, schema-check and resolve a request; every evidence file must be readable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("promotion request not found", file=str(path)) from exc
    except OSError as exc:
        raise InputError(f"cannot read promotion request ({exc.strerror})", file=str(path)) from exc
    doc = _parse(raw, str(path))
    files = []
    for i, item in enumerate(doc["evidence"]):
        epath = path.parent / item["path"]
        try:
            files.append(EvidenceFile(item["ref"], epath, epath.read_bytes()))
        except OSError as exc:
            raise InputError(f"cannot read evidence file {item['path']!r} ({exc.strerror})",
                             file=str(path), field=f"evidence.{i}.path") from exc
    return PromotionRequest(path, doc, raw, tuple(files))
