"""Interoperability with the reference DSSE implementation (securesystemslib), both ways, for
Ed25519 and ECDSA P-256.

securesystemslib matches signatures to keys by key id, and its default key id differs from
slmgate's (sha256 of the SPKI DER): slmgate's verification must never depend on key ids, so the
envelopes signed there keep securesystemslib's ids and still verify here.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from slmgate.evidence import (
    IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPES,
    Envelope,
    PublicKey,
    SigningKey,
    TrustedIdentity,
    TrustPolicy,
    make_statement,
    pae,
    sign_envelope,
    verify_envelope,
)
from slmgate.evidence.errors import PayloadTypeError, SignatureError
from tests.conftest import NOW, serving_predicate

ALGORITHMS = ["ed25519", "ecdsa-p256"]
SUBJECT = "cd" * 32
STATEMENT = make_statement("support-triage", SUBJECT, "serving-config", serving_predicate())


def sslib_key(key: SigningKey, *, keyid: str | None = None) -> SSlibKey:
    """The same public key as securesystemslib sees it (its own key id unless one is given)."""
    crypto = serialization.load_pem_public_key(key.public_key.to_pem())
    return SSlibKey.from_crypto(crypto, keyid=keyid)  # type: ignore[arg-type]


def sslib_signer(key: SigningKey) -> CryptoSigner:
    crypto = serialization.load_pem_private_key(key.private_pem(), password=None)
    return CryptoSigner(crypto)  # type: ignore[arg-type]


def trust_for(*keys: SigningKey) -> TrustPolicy:
    return TrustPolicy(
        identities=tuple(TrustedIdentity(f"k{i}", "service", "runtime", k.public_key,
                                         frozenset(PREDICATE_TYPES)) for i, k in enumerate(keys)),
        max_age={kind: timedelta(days=7) for kind in PREDICATE_TYPES})


def test_pae_is_the_reference_pae() -> None:
    env = SslibEnvelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, {})
    assert env.pae() == pae(IN_TOTO_PAYLOAD_TYPE, STATEMENT)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_slmgate_envelopes_verify_with_securesystemslib(algorithm: str) -> None:
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    raw = sign_envelope(STATEMENT, [key]).to_json()
    env = SslibEnvelope.from_dict(json.loads(raw))
    accepted = env.verify([sslib_key(key, keyid=key.keyid)], 1)
    assert list(accepted) == [key.keyid]
    assert env.payload == STATEMENT and env.payload_type == IN_TOTO_PAYLOAD_TYPE


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("field, value, error", [
    ("payload", base64.b64encode(STATEMENT.replace(b"float32", b"float16")).decode(), SignatureError),
    ("payloadType", "application/json", PayloadTypeError),
])
def test_both_refuse_an_altered_envelope(algorithm: str, field: str, value: str, error: type) -> None:
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    doc = json.loads(sign_envelope(STATEMENT, [key]).to_json())
    doc[field] = value
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(copy.deepcopy(doc)).verify([sslib_key(key, keyid=key.keyid)], 1)
    with pytest.raises(error):
        verify_envelope(json.dumps(doc).encode(), trust_for(key), subject_sha256=SUBJECT, now=NOW)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_securesystemslib_envelopes_verify_in_slmgate(algorithm: str) -> None:
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    signer = sslib_signer(key)
    env = SslibEnvelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, {})
    signature = env.sign(signer)
    assert signature.keyid != key.keyid  # securesystemslib's own key id, not slmgate's
    raw = json.dumps(env.to_dict()).encode()

    parsed = Envelope.from_json(raw)
    assert parsed.payload == STATEMENT
    assert parsed.keys_that_signed([key.public_key]) == [key.public_key]
    ev = verify_envelope(raw, trust_for(key), subject_sha256=SUBJECT, now=NOW)
    assert ev.kind == "serving-config" and [s.key.keyid for s in ev.signers] == [key.keyid]


def test_a_securesystemslib_envelope_with_both_algorithms_meets_a_threshold_of_two() -> None:
    ed, ec = SigningKey.generate("ed25519"), SigningKey.generate("ecdsa-p256")
    env = SslibEnvelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, {})
    env.sign(sslib_signer(ed))
    env.sign(sslib_signer(ec))
    raw = json.dumps(env.to_dict()).encode()
    trust = trust_for(SigningKey.generate(), ed, ec)
    trust = TrustPolicy(trust.identities, thresholds={"serving-config": 2}, max_age=trust.max_age)
    ev = verify_envelope(raw, trust, subject_sha256=SUBJECT, now=NOW)
    assert sorted(s.key.keyid for s in ev.signers) == sorted([ed.keyid, ec.keyid])
    # and securesystemslib agrees, given the keys under its own ids
    accepted = SslibEnvelope.from_dict(json.loads(raw)).verify([sslib_key(ed), sslib_key(ec)], 2)
    assert len(accepted) == 2


def test_a_securesystemslib_signature_by_an_untrusted_key_does_not_verify() -> None:
    trusted, other = SigningKey.generate(), SigningKey.generate()
    env = SslibEnvelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, {})
    env.sign(sslib_signer(other))
    raw = json.dumps(env.to_dict()).encode()
    # even when the envelope claims the trusted key's id
    doc = json.loads(raw)
    doc["signatures"][0]["keyid"] = trusted.keyid
    for candidate in (raw, json.dumps(doc).encode()):
        with pytest.raises(SignatureError):
            verify_envelope(candidate, trust_for(trusted), subject_sha256=SUBJECT, now=NOW)


def test_public_keys_load_the_same_in_both() -> None:
    for algorithm in ALGORITHMS:
        key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
        ssl = sslib_key(key)
        assert ssl.keytype == {"ed25519": "ed25519", "ecdsa-p256": "ecdsa"}[algorithm]
        again = PublicKey.from_pem(key.public_key.to_pem())
        assert again.keyid == key.keyid
