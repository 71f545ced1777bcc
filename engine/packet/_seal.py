"""The packet seal: the gate's signature over the digest of every page of one packet.

A seal is a DSSE envelope (``packet-seal.dsse.json``, carried as an attachment the pages do
not list) whose in-toto Statement is *about the decision record the packet carries*: its subject
is the record's file name and the sha256 of its bytes, and its predicate lists the page digests
(``_pages.page_digests``), in page order, with the digest format and the decision id. The gate
signs it, right after rendering, with the key that signed the decision record.

What a seal is trusted for, in ``packet verify``: nothing on its own. It counts only when the
record verifies under the *caller's* root of trust and the seal is signed by one of the very
keys that signed that record; then an edited, added, dropped or reordered page fails against it.
A seal copied from another packet names another record's digest; one signed by any other key is
refused; a packet without one is checked by re-rendering (``_pages`` says why both ways exist).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata

from slmgate.engine.packet._files import RECORD_NAME, SEAL_NAME
from slmgate.engine.packet._pages import PAGE_DIGEST_FORMAT
from slmgate.evidence import (
    Envelope,
    PublicKey,
    SigningKey,
    Statement,
    check_predicate,
    format_time,
    make_statement,
    sign_envelope,
)
from slmgate.evidence.errors import EvidenceInvalid

__all__ = ["PacketSeal", "SealRefused", "read_seal", "seal_envelope", "sealer"]


class SealRefused(Exception):
    """The seal cannot vouch for these pages; the message says why (``packet verify`` turns it
    into a refusal at the pages step)."""


@dataclass(frozen=True)
class PacketSeal:
    pages: tuple[str, ...]
    sealed_at: str
    signers: tuple[str, ...]  # key ids


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # pragma: no cover - both are dependencies
        return "unknown"


def seal_envelope(record: bytes, decision_id: str, pages: Sequence[str], key: SigningKey,
                  sealed_at: datetime) -> bytes:
    """The seal of a packet whose pages hash to ``pages``, signed by ``key``. ``sealed_at`` is
    the decision's time, so a packet's bytes stay a function of what it is rendered from."""
    predicate = {
        "sealed_at": format_time(sealed_at), "decision_id": decision_id,
        "page_digest": PAGE_DIGEST_FORMAT, "pages": list(pages),
        "renderer": {"slmgate": _version("slmgate"), "weasyprint": _version("weasyprint")},
    }
    statement = make_statement(RECORD_NAME, hashlib.sha256(record).hexdigest(), "packet-seal", predicate)
    return sign_envelope(statement, [key]).to_json()


def sealer(record: bytes, decision_id: str, key: SigningKey,
           sealed_at: datetime) -> Callable[[Sequence[str]], bytes]:
    """What ``render_packet`` calls with the rendered pages' digests to get the seal's bytes."""
    return lambda pages: seal_envelope(record, decision_id, pages, key, sealed_at)


def read_seal(raw: bytes, record: bytes, decision_id: str, record_keys: Sequence[PublicKey]) -> PacketSeal:
    """The pages a seal vouches for, once it is shown to be signed by one of ``record_keys`` (the
    keys whose signature on ``record`` the caller's root of trust accepted) and to be about
    ``record``; anything else is ``SealRefused``."""
    try:
        envelope = Envelope.from_json(raw)
        signed = envelope.keys_that_signed(record_keys)
        if not signed:
            raise SealRefused(f"{SEAL_NAME} is not signed by the key that signed the decision record")
        statement = Statement.parse(envelope.payload)
        if statement.kind != "packet-seal":
            raise SealRefused(f"{SEAL_NAME} is a {statement.kind} statement, not a packet seal")
        check_predicate("packet-seal", statement.predicate)
    except EvidenceInvalid as exc:
        raise SealRefused(f"{SEAL_NAME} does not verify: {exc.step}: {exc.message}") from exc
    want = hashlib.sha256(record).hexdigest()
    if statement.subjects != ((RECORD_NAME, want),):
        raise SealRefused(f"{SEAL_NAME} seals the pages of another decision record "
                          f"(subject {', '.join(f'{n} sha256:{d[:16]}…' for n, d in statement.subjects)}, "
                          f"this packet's record is sha256:{want[:16]}…)")
    predicate = statement.predicate
    if predicate["decision_id"] != decision_id:
        raise SealRefused(f"{SEAL_NAME} names decision {predicate['decision_id']}, the record {decision_id}")
    if predicate["page_digest"] != PAGE_DIGEST_FORMAT:
        raise SealRefused(f"{SEAL_NAME} lists page digests in format {predicate['page_digest']!r}; "
                          f"this slmgate computes {PAGE_DIGEST_FORMAT!r} (verify with --rerender, "
                          "or with the slmgate that sealed it)")
    return PacketSeal(tuple(predicate["pages"]), predicate["sealed_at"], tuple(k.keyid for k in signed))
