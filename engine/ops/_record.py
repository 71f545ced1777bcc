"""`slmgate ledger record`: a signed statement made after the decisions (a week of operations
metrics) verified against the trust policy and kept in the ledger as an attestation entry.

The checks, in order: the file is read within its size limit (``InputError``, exit 2);
``verify_envelope`` against the trust policy — signature, revocation, key validity, the signer
allowed to sign this kind, threshold, schema, freshness (``EvidenceInvalid``, exit 4); the kind
is one the ledger keeps from outside the gate (exit 2 otherwise: a deployment attestation is
the gate's own word, recorded by `deploy verify --record`); the predicate's own consistency
(``check_ops_predicate``, exit 4).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from slmgate.engine.ledger._attestation import ATTESTATION_KINDS, PendingAttestation
from slmgate.engine.ops._metrics import check_ops_predicate
from slmgate.evidence import TrustPolicy, VerifiedEvidence, verify_envelope
from slmgate.evidence.errors import InputError

MAX_ENVELOPE_BYTES = 1 << 20


def verified_attestation(path: Path, trust: TrustPolicy, now: datetime) -> tuple[VerifiedEvidence,
                                                                                 PendingAttestation]:
    """The verified statement in ``path`` and the attestation entry that records it."""
    try:
        if path.stat().st_size > MAX_ENVELOPE_BYTES:
            raise InputError(f"larger than {MAX_ENVELOPE_BYTES} bytes; not an envelope", file=str(path))
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", file=str(path)) from exc
    verified = verify_envelope(raw, trust, subject_sha256=None, now=now, ref=path.name)
    kind = verified.kind
    if ATTESTATION_KINDS.get(kind) is not False:
        hint = ("it is recorded by `slmgate deploy verify --record`, which checks the weights"
                if kind in ATTESTATION_KINDS else "the ledger keeps decisions through `promote`")
        raise InputError(f"a {kind} statement is not recorded with `ledger record`", file=str(path),
                         advice=hint)
    check_ops_predicate(verified.statement.predicate)
    p = verified.statement.predicate
    where = f" in {p['region']}" if p.get("region") else ""
    message = (f"ops: {p['model']['name']} week {p['period']['week']}{where} "
               f"({p['model']['weights_digest'][:19]}, {p['tasks']} tasks)")
    return verified, PendingAttestation(kind, raw, message)
