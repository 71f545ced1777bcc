"""Signed evidence about model candidates: keys, DSSE envelopes, in-toto statements, weights
manifests and verification against a trust policy."""

from ._atomic import write_atomic
from ._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae, sign_envelope
from ._keys import PublicKey, SigningKey, write_key_pair
from ._manifest import (
    DEFAULT_IGNORED,
    HashAlgorithm,
    ManifestDiff,
    ResourceDigest,
    WeightsManifest,
    hash_model_dir,
)
from ._predicates import check_predicate, predicate_schema
from ._statement import (
    PREDICATE_KINDS,
    PREDICATE_TYPES,
    Statement,
    canonical_json,
    format_time,
    make_statement,
    parse_time,
)
from ._trust import (
    TrustedIdentity,
    TrustPolicy,
    VerificationResult,
    VerifiedEvidence,
    check_freshness,
    verify_envelope,
)

__all__ = [
    "DEFAULT_IGNORED",
    "IN_TOTO_PAYLOAD_TYPE",
    "PREDICATE_KINDS",
    "PREDICATE_TYPES",
    "Envelope",
    "HashAlgorithm",
    "ManifestDiff",
    "PublicKey",
    "ResourceDigest",
    "SigningKey",
    "Statement",
    "TrustPolicy",
    "TrustedIdentity",
    "VerificationResult",
    "VerifiedEvidence",
    "WeightsManifest",
    "canonical_json",
    "check_freshness",
    "check_predicate",
    "format_time",
    "hash_model_dir",
    "make_statement",
    "pae",
    "parse_time",
    "predicate_schema",
    "sign_envelope",
    "verify_envelope",
    "write_atomic",
    "write_key_pair",
]
