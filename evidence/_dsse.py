"""DSSE envelopes (v1.0): PAE signing over the payload bytes as received, several signatures each.

The payload is never re-serialised: verification runs over the exact decoded bytes, and only
those verified bytes are parsed afterwards. Key ids are hints; a signature counts only when it
verifies under a key the caller trusts.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._keys import PublicKey, SigningKey
from .errors import EnvelopeFormatError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_B64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64decode(text: str, *, what: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; anything else is refused."""
    if not isinstance(text, str) or not _B64.match(text):
        raise EnvelopeFormatError(f"DSSE: {what} is not base64")
    body = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(
            body.replace("+", "-").replace("/", "_") + "=" * (-len(body) % 4)
        )
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeFormatError(f"DSSE: {what} is not valid base64 ({exc})") from exc


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope. ``payload`` holds the exact bytes that were signed."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnvelopeFormatError(f"DSSE: envelope is not JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise EnvelopeFormatError("DSSE: envelope must be a JSON object")
        missing = sorted({"payload", "payloadType", "signatures"} - doc.keys())
        if missing:
            raise EnvelopeFormatError(f"DSSE: envelope lacks {', '.join(missing)}")
        if not isinstance(doc["payloadType"], str):
            raise EnvelopeFormatError("DSSE: payloadType must be a string")
        sigs = doc["signatures"]
        if not isinstance(sigs, list) or not sigs:
            raise EnvelopeFormatError("DSSE: at least 1 signature required, got 0")
        if len(sigs) > _MAX_SIGNATURES:
            raise EnvelopeFormatError(
                f"DSSE: at most {_MAX_SIGNATURES} signatures allowed, got {len(sigs)}"
            )
        parsed = []
        for i, s in enumerate(sigs):
            if not isinstance(s, dict) or "sig" not in s:
                raise EnvelopeFormatError(f"DSSE: signatures[{i}] lacks sig")
            keyid = s.get("keyid", "")
            if not isinstance(keyid, str):
                raise EnvelopeFormatError(f"DSSE: signatures[{i}].keyid must be a string")
            parsed.append(Signature(keyid, b64decode(s["sig"], what=f"signatures[{i}].sig")))
        payload = b64decode(doc["payload"], what="payload")
        return cls(doc["payloadType"], payload, tuple(parsed))

    def to_json(self) -> bytes:
        doc = {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()}
                for s in self.signatures
            ],
        }
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"

    def keys_that_signed(self, candidates: Iterable[PublicKey]) -> list[PublicKey]:
        """The distinct candidate keys with at least one valid signature over this envelope."""
        message = pae(self.payload_type, self.payload)
        found: dict[str, PublicKey] = {}
        for key in candidates:
            if key.keyid in found:
                continue
            if any(key.verifies(s.sig, message) for s in self.signatures):
                found[key.keyid] = key
        return list(found.values())


def sign_envelope(
    payload: bytes, signers: Sequence[SigningKey], payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> Envelope:
    """Sign ``payload`` with every key in ``signers`` (at least one)."""
    if not signers:
        raise ValueError("sign_envelope needs at least one signing key")
    message = pae(payload_type, payload)
    return Envelope(
        payload_type, payload, tuple(Signature(k.keyid, k.sign(message)) for k in signers)
    )
