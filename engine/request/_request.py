"""Promotion requests: what changes, against which baseline, with which signed evidence.

A request and every file beside it are the requester's (README, "Threat model"): the request is
read with a size cap and parsed strictly (``_strict_json``); each evidence file and the weights
folder are read confined to the request's folder or ``--evidence-root`` (``_confined``). A file
that is not a DSSE envelope is never kept: it is replaced by a small *withheld-evidence* record
of its digest, size and why, which verification refuses at the ``parse`` step the same way in
the live decision, in the ledger's replay and in the packet's re-verification.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from slmgate.engine._schemas import check_document
from slmgate.engine.request._confined import confined_dir, contains_private_key, read_capped, read_confined
from slmgate.engine.request._strict_json import loads_strict
from slmgate.evidence import PREDICATE_TYPES, Envelope, canonical_json
from slmgate.evidence.errors import EnvelopeFormatError, InputError

WITHHELD_TYPE = "https://slmgate.dev/withheld-evidence/v1"


@dataclass(frozen=True)
class RequestLimits:
    """What one request may make the gate read: the request file, each evidence file, and all
    evidence together (so a 1 MiB request cannot name 20,000 files of 16 MiB each)."""

    max_request_bytes: int = 1 << 20
    max_evidence_bytes: int = 16 << 20
    max_total_evidence_bytes: int = 256 << 20


@dataclass(frozen=True)
class EvidenceFile:
    ref: str
    path: Path
    raw: bytes

    @cached_property
    def claimed_predicate_type(self) -> str | None:
        """``claimed_predicate_type`` of ``raw``, read once however often it is asked (which
        binding verification applies, what the approval digest leaves out)."""
        return claimed_predicate_type(self.raw)


@dataclass(frozen=True)
class PromotionRequest:
    path: Path
    doc: dict[str, Any]
    raw: bytes
    evidence: tuple[EvidenceFile, ...]
    weights_dir: Path | None = None

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def weights_sha256(self) -> str:
        return str(self.doc["model"]["weights_digest"]).removeprefix("sha256:")

    @property
    def baseline_sha256(self) -> str:
        return str(self.doc["baseline"]["weights_digest"]).removeprefix("sha256:")

    @cached_property
    def approval_digest(self) -> str:
        """The stable digest an approval of this request signs (``approval_digest``); computed
        once per request (it hashes every envelope), however many approvals are checked."""
        return approval_digest(self.doc, {e.ref: e.raw for e in self.evidence},
                               claimed={e.ref: e.claimed_predicate_type for e in self.evidence})

    def with_approvals(self, approvals: list[tuple[str, bytes]]) -> PromotionRequest:
        """This request with approvals supplied beside it (``promote --approval``): each kept as
        evidence under the ref ``approval@<sha256[:12]>`` (``@`` is never in a request's own
        refs), in digest order, so the ledger and the packet record them like any envelope."""
        extra = {f"{SUPPLIED_PREFIX}{hashlib.sha256(raw).hexdigest()[:12]}": (name, raw)
                 for name, raw in approvals}
        known = {e.ref for e in self.evidence}
        files = [EvidenceFile(ref, Path(name), _kept(raw))
                 for ref, (name, raw) in sorted(extra.items()) if ref not in known]
        return PromotionRequest(self.path, self.doc, self.raw, (*self.evidence, *files),
                                self.weights_dir)

    def model_dir(self) -> Path | None:
        """The weights folder named in the request, already confined by ``load_request``."""
        return self.weights_dir


SUPPLIED_PREFIX = "approval@"


def is_supplied_approval(ref: str) -> bool:
    """Whether ``ref`` names an approval supplied beside the request (``promote --approval``)."""
    return ref.startswith(SUPPLIED_PREFIX)


def claimed_predicate_type(raw: bytes) -> str | None:
    """The predicateType an envelope's statement *claims*, unverified: read only to choose what
    happens before verification (which subject binding it is verified with, what the approval
    digest leaves out); verification decides what counts. ``None`` when the envelope or its
    payload cannot be read, or names no type."""
    return _read_envelope(raw)[1]


# Envelopes already read (``_read_envelope``), by their bytes: what-if reads each stored
# envelope once for every decision that holds it. Only envelopes of at most _READ_MAX bytes are
# kept, and never anything that is not one (a file the gate withholds is not kept in memory).
_READ: dict[bytes, tuple[str | None, str | None]] = {}
_READ_MAX, _READ_ENTRIES = 64 << 10, 1024


def _read_envelope(raw: bytes) -> tuple[str | None, str | None]:
    """Why ``raw`` is not a DSSE envelope (``None`` when it is one), and the predicateType its
    statement claims (``claimed_predicate_type``)."""
    memo = type(raw) is bytes and len(raw) <= _READ_MAX  # only immutable bytes are a key
    known = _READ.get(raw) if memo else None
    if known is not None:
        return known
    try:
        payload = Envelope.from_json(raw).payload
    except EnvelopeFormatError as exc:
        return exc.message, None
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        statement = None
    ptype = statement.get("predicateType") if isinstance(statement, dict) else None
    reading = (None, ptype if isinstance(ptype, str) else None)
    if memo:
        if len(_READ) >= _READ_ENTRIES:
            _READ.clear()
        _READ[raw] = reading
    return reading


def approval_digest(doc: dict[str, Any], evidence: dict[str, bytes] | None = None, *,
                    claimed: Mapping[str, str | None] | None = None) -> str:
    """The request's **stable digest**: what an approval signs. sha256 of the canonical JSON of
    everything the request promotes — the request without local paths (``model.path``, each
    evidence ``path``), its evidence as ``{ref, sha256}`` of the envelopes (``evidence`` maps ref
    to bytes) — leaving out the approvals themselves (envelopes whose statement claims the
    approval predicate, those not at hand, and the ``approval@`` ones supplied beside the
    request). Moving or copying the request folder keeps it; changing anything it covers
    changes it. Round-trips with ``slmgate review status``, which prints it. ``claimed`` maps
    refs to their ``claimed_predicate_type`` when already read (``PromotionRequest`` reads each
    envelope's once for verification and this digest together)."""
    body = {k: v for k, v in doc.items() if k != "evidence"}
    body["model"] = {k: v for k, v in doc["model"].items() if k != "path"}
    items = []
    for item in doc.get("evidence", []):
        raw = (evidence or {}).get(item["ref"])
        # An envelope not at hand is one the approver cannot have seen (the approvals being
        # made): left out. At verification every envelope is at hand, so anything added under
        # such a ref later is covered, and the approval no longer matches.
        if raw is None or item["ref"].startswith(SUPPLIED_PREFIX):
            continue
        ref = item["ref"]
        claim = claimed[ref] if claimed is not None and ref in claimed else claimed_predicate_type(raw)
        if claim == PREDICATE_TYPES["approval"]:
            continue
        items.append({"ref": item["ref"], "sha256": hashlib.sha256(raw).hexdigest()})
    body["evidence"] = sorted(items, key=lambda i: str(i["ref"]))
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def withheld(raw: bytes, reason: str) -> bytes:
    """What is kept of an evidence file that is not a DSSE envelope: its digest, size and the
    parse error, never its bytes (it might be anything the requester's path reached)."""
    return canonical_json({"_type": WITHHELD_TYPE, "sha256": hashlib.sha256(raw).hexdigest(),
                           "size": len(raw), "reason": reason}) + b"\n"


def withheld_reason(kept: bytes) -> str | None:
    """Why an evidence file was withheld, when ``kept`` is a withheld record; else ``None``."""
    if not kept.startswith(b'{"_type":"' + WITHHELD_TYPE.encode() + b'"'):
        return None
    try:
        doc = json.loads(kept)
        return (f"not a DSSE envelope ({doc['size']} bytes, sha256:{doc['sha256'][:16]}…, "
                f"withheld): {doc['reason']}")
    except (ValueError, KeyError, TypeError):
        return "not a DSSE envelope (withheld record unreadable)"


def _kept(raw: bytes, *, recorded: bool = False) -> bytes:
    """The bytes the gate keeps of an evidence file: an envelope as it is, anything else as a
    withheld record. ``recorded``: bytes from a ledger or packet, where a withheld record was
    already made by the gate and is kept as it is."""
    if recorded and withheld_reason(raw) is not None:
        return raw
    refused = _read_envelope(raw)[0]
    return raw if refused is None else withheld(raw, refused)


def _parse(raw: bytes, source: str) -> dict[str, Any]:
    if contains_private_key(raw):
        raise InputError("holds a private key; refused and not recorded", file=source,
                         advice="a request names evidence; keys stay in the vault")
    doc = loads_strict(raw, source=source)
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
        kept = _kept(evidence[item["ref"]], recorded=True)
        files.append(EvidenceFile(item["ref"], Path(item["path"]), kept))
    for ref in sorted(r for r in evidence if r.startswith(SUPPLIED_PREFIX)):  # promote --approval
        files.append(EvidenceFile(ref, Path(ref), _kept(evidence[ref], recorded=True)))
    return PromotionRequest(Path(source), doc, raw, tuple(files))


def load_request(path: Path, *, evidence_root: Path | None = None,
                 limits: RequestLimits = RequestLimits()) -> PromotionRequest:
    """Read, strictly parse and schema-check a request, and read its evidence: every path is
    relative to the request's folder and must stay inside it (or inside ``evidence_root``);
    regular files only, within ``limits``."""
    source = str(path)
    if not path.exists() and not path.is_symlink():
        raise InputError("promotion request not found", file=source)
    raw = read_capped(path, limits.max_request_bytes, file=source, field=None,
                      what="the promotion request")
    doc = _parse(raw, source)
    root = evidence_root if evidence_root is not None else path.parent
    files, total = [], 0
    for i, item in enumerate(doc["evidence"]):
        field = f"evidence.{i}.path"
        data = read_confined(path.parent, root, item["path"], limits.max_evidence_bytes, file=source,
                             field=field)
        total += len(data)
        if total > limits.max_total_evidence_bytes:
            raise InputError(f"the evidence adds up to over {limits.max_total_evidence_bytes} "
                             "bytes; refused", file=source, field=field)
        files.append(EvidenceFile(item["ref"], path.parent / item["path"], _kept(data)))
    weights = doc["model"].get("path")
    weights_dir = (confined_dir(path.parent, root, weights, file=source, field="model.path")
                   if weights else None)
    return PromotionRequest(path, doc, raw, tuple(files), weights_dir)
