"""Signing keys: Ed25519 and ECDSA P-256 through ``cryptography``; key ids derive from the public key.

Ed25519 signatures are *checked* with libsodium (PyNaCl's ``crypto_sign_open``) rather than
OpenSSL: 66 µs against 122 µs a check here, on the path that verifies every envelope of a
promotion (docs/benchmarks.md, "Envelope verification"). libsodium is the stricter of the two —
it also refuses non-canonical and small-order points — so a signature it accepts OpenSSL accepts
too (``tests/evidence/test_keys.py`` holds them to the same verdict on genuine, tampered and
random signatures); signing stays with ``cryptography``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from .errors import InputError

KeyAlgorithm = Literal["ed25519", "ecdsa-p256"]
_PublicKeyTypes = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_PrivateKeyTypes = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _spki(key: _PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _algorithm_of(key: _PublicKeyTypes, source: str) -> KeyAlgorithm:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ecdsa-p256"
    raise InputError(
        f"unsupported key type {type(key).__name__}", file=source,
        advice="slmgate accepts Ed25519 and ECDSA P-256 keys",
    )


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _libsodium_check(public: bytes) -> Callable[[bytes, bytes], None]:
    """An Ed25519 check by libsodium that raises ``InvalidSignature`` as ``cryptography``'s does."""
    def check(signature: bytes, data: bytes) -> None:
        if len(signature) != 64:  # libsodium reads signature + message: a longer one's tail
            raise InvalidSignature  # would be taken as the start of the message
        try:
            crypto_sign_open(signature + data, public)
        except (BadSignatureError, ValueError, TypeError) as exc:  # every refusal it has
            raise InvalidSignature from exc
    return check


@dataclass(frozen=True)
class PublicKey:
    """A verification key. ``keyid`` is the sha256 of its DER SubjectPublicKeyInfo, in hex.

    The key is parsed once, when the object is made; ``verifies`` only runs the signature check.
    """

    algorithm: KeyAlgorithm
    keyid: str
    _key: _PublicKeyTypes = field(repr=False, compare=False)
    _verify: Callable[[bytes, bytes], None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = self._key
        if isinstance(key, ed25519.Ed25519PublicKey):
            check = _libsodium_check(key.public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw))
        else:
            def check(signature: bytes, data: bytes) -> None:
                key.verify(signature, data, _ECDSA_SHA256)
        object.__setattr__(self, "_verify", check)

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str = "<pem>") -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise InputError(f"not a PEM public key ({exc})", file=source) from exc
        if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise InputError(f"unsupported key type {type(key).__name__}", file=source)
        algorithm = _algorithm_of(key, source)
        return cls(algorithm, hashlib.sha256(_spki(key)).hexdigest(), key)

    @classmethod
    def load(cls, path: Path) -> PublicKey:
        try:
            return cls.from_pem(path.read_bytes(), source=str(path))
        except OSError as exc:
            raise InputError(f"cannot read public key ({exc.strerror})", file=str(path)) from exc

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's signature over ``data``."""
        try:
            self._verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private key that signs DSSE envelopes."""

    public_key: PublicKey
    _key: _PrivateKeyTypes = field(repr=False, compare=False)

    @property
    def keyid(self) -> str:
        return self.public_key.keyid

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm = "ed25519") -> SigningKey:
        key: _PrivateKeyTypes
        if algorithm == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ecdsa-p256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise InputError(f"unknown key algorithm {algorithm!r}; expected ed25519 or ecdsa-p256")
        return cls._from_private(key, "<generated>")

    @classmethod
    def _from_private(cls, key: _PrivateKeyTypes, source: str) -> SigningKey:
        pub = key.public_key()
        algorithm = _algorithm_of(pub, source)
        return cls(PublicKey(algorithm, hashlib.sha256(_spki(pub)).hexdigest(), pub), key)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read private key ({exc.strerror})", file=str(path)) from exc
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise InputError(f"not an unencrypted PEM private key ({exc})", file=str(path)) from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise InputError(f"unsupported key type {type(key).__name__}", file=str(path))
        return cls._from_private(key, str(path))

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, _ECDSA_SHA256)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _create_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``: never over an existing file, never through a link
    (``O_EXCL|O_NOFOLLOW``); ``FileExistsError`` otherwise."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if os.path.lexists(path):  # a file or a link (dangling included) is already there
            raise FileExistsError(exc.errno, "already exists", str(path)) from exc
        raise
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def write_key_pair(key: SigningKey, private_path: Path, public_path: Path) -> None:
    """Write ``NAME.key`` (mode 0600, created that way) and ``NAME.pub`` (PEM). Neither ever
    replaces a file or follows a link: ``FileExistsError`` when one is there, nothing written."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise FileExistsError(17, "already exists", str(path))
    _create_new(private_path, key.private_pem(), 0o600)
    _create_new(public_path, key.public_key.to_pem(), 0o644)
