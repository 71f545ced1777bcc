"""Attestations in the ledger: signed statements made after a decision (a deployment verified
in a region, a week of operations metrics) kept in the same hash chain as the decisions.

An attestation commit adds exactly two files::

    entries/<seq/100>/<seq>-<id>.attestation.dsse.json   the chain link, signed by the gate
    attestations/<xx>/<id>.dsse.json                      the attestation envelope, as received

The chain link has its own ``_type`` (``ATTESTATION_ENTRY_TYPE``) and names the previous
entry by sha256 exactly as a decision's entry does, so cutting, reordering or editing an
attestation breaks the chain like any decision. It is recorded through ``Ledger.record_pending``
(the same lock, the same atomic protocol).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slmgate.engine.ledger._store import (
    LedgerError,
    entry_envelope_bytes,
    sha256_hex,
    slmgate_version,
)
from slmgate.evidence import SigningKey, canonical_json, format_time

ATTESTATION_ENTRY_TYPE = "https://slmgate.dev/ledger-entry/attestation/v1"
ATTESTATION_SUFFIX = ".attestation.dsse.json"
# The statement kinds the ledger keeps as attestations, and whether the gate itself must have
# signed the statement (a deployment attestation is the gate's word; operations metrics are the
# monitoring service's, verified against the trust policy before they were recorded).
ATTESTATION_KINDS: dict[str, bool] = {"deployment-attestation": True, "ops-metrics": False}
_ID = re.compile(r"^[a-z]+-[0-9a-f]{20}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def attestation_path(attestation_id: str) -> str:
    return f"attestations/{sha256_hex(attestation_id.encode())[:2]}/{attestation_id}.dsse.json"


def attestation_entry_path(seq: int, attestation_id: str) -> str:
    return f"entries/{seq // 100:06d}/{seq:08d}-{attestation_id}{ATTESTATION_SUFFIX}"


def attestation_id_for(kind: str, envelope: bytes) -> str:
    """The id of an attestation: its kind's first word and the envelope's sha256 prefix
    (``deployment-1a2b...``), so recording the same envelope twice is refused."""
    return f"{kind.split('-')[0]}-{sha256_hex(envelope)[:20]}"


@dataclass(frozen=True)
class AttestationManifest:
    """One attestation link of the chain. Round-trips:
    ``AttestationManifest.from_payload(m.payload()) == m``."""

    seq: int
    prev: str | None
    attestation_id: str
    kind: str
    recorded_at: str
    attestation_sha256: str
    slmgate_version: str

    def payload(self) -> bytes:
        return canonical_json({
            "_type": ATTESTATION_ENTRY_TYPE, "seq": self.seq, "prev": self.prev,
            "attestation_id": self.attestation_id, "kind": self.kind,
            "recorded_at": self.recorded_at,
            "attestation": {"path": attestation_path(self.attestation_id),
                            "sha256": self.attestation_sha256},
            "slmgate_version": self.slmgate_version,
        })

    @classmethod
    def from_payload(cls, raw: bytes) -> AttestationManifest:
        try:
            doc: Any = json.loads(raw)
            if doc["_type"] != ATTESTATION_ENTRY_TYPE:
                raise ValueError(f"_type {doc['_type']!r}")
            manifest = cls(
                seq=int(doc["seq"]), prev=doc["prev"], attestation_id=str(doc["attestation_id"]),
                kind=str(doc["kind"]), recorded_at=str(doc["recorded_at"]),
                attestation_sha256=str(doc["attestation"]["sha256"]),
                slmgate_version=str(doc.get("slmgate_version", "")),
            )
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"not a ledger attestation entry ({exc})") from exc
        if not _ID.match(manifest.attestation_id) or not _HEX.match(manifest.attestation_sha256):
            raise LedgerError("ledger attestation entry names an invalid id or digest")
        if manifest.kind not in ATTESTATION_KINDS:
            raise LedgerError(f"ledger attestation entry of unknown kind {manifest.kind!r}")
        return manifest


@dataclass(frozen=True)
class PendingAttestation:
    """One attestation commit before it is committed (see ``Ledger.record_pending``)."""

    kind: str
    envelope: bytes
    message: str

    @property
    def entry_id(self) -> str:
        return attestation_id_for(self.kind, self.envelope)

    @property
    def unique_path(self) -> str:
        """The file whose presence means this attestation is already recorded."""
        return attestation_path(self.entry_id)

    def shared_paths(self) -> list[str]:
        return []

    def files(self, seq: int, prev_entry: bytes | None, key: SigningKey | None,
              stored: set[str], now: datetime | None = None) -> tuple[dict[str, bytes], str]:
        if self.kind not in ATTESTATION_KINDS:
            raise LedgerError(f"the ledger does not keep {self.kind} statements as attestations")
        manifest = AttestationManifest(
            seq=seq, prev=f"sha256:{sha256_hex(prev_entry)}" if prev_entry is not None else None,
            attestation_id=self.entry_id, kind=self.kind,
            recorded_at=format_time(now or datetime.now(UTC)),
            attestation_sha256=sha256_hex(self.envelope), slmgate_version=slmgate_version(),
        )
        entry = attestation_entry_path(seq, self.entry_id)
        return {entry: entry_envelope_bytes(manifest.payload(), key),
                attestation_path(self.entry_id): self.envelope}, entry

    def message_for(self, seq: int, entry: bytes) -> str:
        return (f"{self.message.rstrip()}\n\nSlmgate-Seq: {seq}\n"
                f"Slmgate-Entry: sha256:{sha256_hex(entry)}\n")

