"""DSSE envelopes (v1.0): PAE signing over the payload bytes as received, several signatures each.

The payload is never re-serialised: verification runs over the exact decoded bytes, and only
those verified bytes are parsed afterwards. Key ids are hints; a signature counts only when it
verifies under a key the caller trusts, whatever key id it carries.

Base64 is read in the standard or the URL-safe alphabet (not a mix of both), padded or not, and
only in its canonical form (no stray bits in the last character): one payload has one spelling
per alphabet, so an envelope cannot be altered without its bytes changing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pybase64

from ._keys import PublicKey, SigningKey
from ._statement import canonical_or_strict_json
from .errors import EnvelopeFormatError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_TO_STANDARD = str.maketrans("-_", "+/")
_MAX_SIGNATURES = 16
# The characters that may end padded base64 without stray bits: 6-bit values whose low 4 bits
# (before "==") or low 2 bits (before "=") are zero.
_LAST_BEFORE_TWO_PADS = "AQgw"
_LAST_BEFORE_ONE_PAD = "AEIMQUYcgkosw048"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64decode(text: object, *, what: str) -> bytes:
    """Decode canonical standard or URL-safe base64, padded or not; anything else is refused."""
    if not isinstance(text, str):
        raise EnvelopeFormatError(f"DSSE: {what} must be a base64 string")
    if not len(text) % 4:  # the padded standard spelling envelopes are written in: at once
        try:
            data = pybase64.b64decode(text, validate=True)
        except ValueError:  # binascii.Error is one; the checks below say what is wrong
            pass
        else:
            # Canonical: the last character before padding carries no bits past the data.
            if (text[-3] in _LAST_BEFORE_TWO_PADS if text[-2:] == "=="
                    else text[-2] in _LAST_BEFORE_ONE_PAD if text[-1:] == "=" else True):
                return data
    body = text.rstrip("=")
    if "-" in body or "_" in body:
        if "+" in body or "/" in body:
            raise EnvelopeFormatError(
                f"DSSE: {what} is not base64 (standard or URL-safe alphabet, not a mix)")
        body = body.translate(_TO_STANDARD)
    padding = len(text) - len(body)
    if padding > 2 or len(body) % 4 == 1 or (padding and (len(body) + padding) % 4):
        raise EnvelopeFormatError(f"DSSE: {what} is not valid base64 (wrong length or padding)")
    try:  # strict: only alphabet characters, padding only at the end
        data = binascii.a2b_base64(body + "=" * (-len(body) % 4), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeFormatError(f"DSSE: {what} is not base64 ({exc})") from exc
    if not _no_stray_bits(data, body):
        raise EnvelopeFormatError(f"DSSE: {what} is not canonical base64 (stray trailing bits)")
    return data


def _no_stray_bits(data: bytes, body: str) -> bool:
    """Whether ``body`` (standard alphabet, padding removed) ends as the encoding of ``data``
    does: the bits of its last character past the data are zero, so it is the one spelling."""
    tail = len(data) % 3
    if not tail:
        return True
    return binascii.b2a_base64(data[-tail:], newline=False).rstrip(b"=") == body[-(tail + 1):].encode()


class Signature(NamedTuple):
    """One signature of an envelope; ``keyid`` is a hint only: which key to try first."""

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
        doc = canonical_or_strict_json(raw, EnvelopeFormatError, "DSSE: the envelope")
        if not isinstance(doc, dict):
            raise EnvelopeFormatError("DSSE: envelope must be a JSON object")
        if "payload" not in doc or "payloadType" not in doc or "signatures" not in doc:
            missing = sorted({"payload", "payloadType", "signatures"} - doc.keys())
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
        """Standard padded base64, sorted keys: the form every DSSE implementation reads."""
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
        """The distinct candidate keys with a valid signature over this envelope, in candidate
        order. A signature's key id only decides which key is tried first; every candidate key
        not yet matched is tried before a signature is given up on."""
        keys: dict[str, PublicKey] = {}
        for key in candidates:
            keys.setdefault(key.keyid, key)
        return self.keys_that_signed_among(keys)

    def keys_that_signed_among(self, keys: Mapping[str, PublicKey]) -> list[PublicKey]:
        """``keys_that_signed`` over candidate keys already indexed by their key ids (each
        under its own), as a trust policy keeps them."""
        message = pae(self.payload_type, self.payload)
        found: set[str] = set()
        for s in self.signatures:
            hinted = keys.get(s.keyid)
            if hinted is not None and s.keyid not in found and hinted.verifies(s.sig, message):
                found.add(s.keyid)
                continue
            for keyid, key in keys.items():
                if keyid not in found and key is not hinted and key.verifies(s.sig, message):
                    found.add(keyid)
                    break
        return [key for keyid, key in keys.items() if keyid in found]


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
