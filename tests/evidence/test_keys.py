"""Keys: the two algorithms slmgate signs with, key ids from the public key, and every key file
it refuses (with the file named)."""

from __future__ import annotations

import errno
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from slmgate.evidence import SigningKey
from slmgate.evidence._keys import PublicKey, _create_new, write_key_pair
from slmgate.evidence.errors import InputError

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def _spki_sha256(key: PublicKey) -> str:
    der = serialization.load_pem_public_key(key.to_pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def test_the_default_algorithm_is_ed25519() -> None:
    key = SigningKey.generate()
    assert key.public_key.algorithm == "ed25519"
    assert len(key.sign(MESSAGE)) == 64


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_a_signature_verifies_under_its_key_only(algorithm: str) -> None:
    key, other = SigningKey.generate(algorithm), SigningKey.generate(algorithm)  # type: ignore[arg-type]
    assert key.public_key.algorithm == algorithm
    sig = key.sign(MESSAGE)
    assert key.public_key.verifies(sig, MESSAGE) is True
    assert key.public_key.verifies(sig, MESSAGE + b" ") is False
    assert other.public_key.verifies(sig, MESSAGE) is False


def _openssl_verdict(key: SigningKey, signature: bytes, data: bytes) -> bool:
    try:
        key._key.public_key().verify(signature, data)  # cryptography's (OpenSSL's) Ed25519 check
    except InvalidSignature:
        return False
    return True


KEY, OTHER = SigningKey.generate("ed25519"), SigningKey.generate("ed25519")


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=2048), flip=st.integers(min_value=0), how=st.sampled_from(
    ["genuine", "bit in signature", "bit in data", "other key", "random signature", "short", "long"]))
def test_the_libsodium_check_gives_openssls_verdict(data: bytes, flip: int, how: str) -> None:
    """Ed25519 is checked by libsodium, signed by cryptography: on genuine signatures, a flipped
    bit in signature or data, another key's signature, random bytes and wrong lengths, the
    verdict is OpenSSL's."""
    signature = KEY.sign(data)
    if how == "bit in signature":
        bit = flip % 512
        signature = bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(signature))
    elif how == "bit in data" and data:
        bit = flip % (len(data) * 8)
        data = bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(data))
    elif how == "other key":
        signature = OTHER.sign(data)
    elif how == "random signature":
        signature = hashlib.sha512(flip.to_bytes(16, "big")).digest()
    elif how == "short":
        signature = signature[:63]
    elif how == "long":  # the key's signature over b"\0" + data with that byte appended: libsodium
        signature = KEY.sign(b"\x00" + data) + b"\x00"  # reads sig + message; a length check refuses
    expected = _openssl_verdict(KEY, signature, data)
    assert KEY.public_key.verifies(signature, data) is expected
    assert expected is (how == "genuine" or (how == "bit in data" and not data))


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_the_key_id_is_the_sha256_of_the_public_key(algorithm: str) -> None:
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    assert key.keyid == key.public_key.keyid == _spki_sha256(key.public_key)
    again = PublicKey.from_pem(key.public_key.to_pem())
    assert again == key.public_key and again.algorithm == algorithm


def test_an_unknown_algorithm_is_refused() -> None:
    with pytest.raises(InputError, match="unknown key algorithm 'rsa'"):
        SigningKey.generate("rsa")  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_a_key_pair_round_trips_through_its_files(tmp_path: Path, algorithm: str) -> None:
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    private, public = tmp_path / "a" / "k.key", tmp_path / "b" / "k.pub"
    write_key_pair(key, private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    loaded = SigningKey.load(private)
    assert loaded.keyid == key.keyid and loaded.public_key.algorithm == algorithm
    assert PublicKey.load(public) == key.public_key
    assert key.public_key.verifies(loaded.sign(MESSAGE), MESSAGE)


def test_the_public_key_file_is_world_readable_and_no_more(tmp_path: Path) -> None:
    write_key_pair(SigningKey.generate(), tmp_path / "k.key", tmp_path / "k.pub")
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k.pub").stat().st_mode) == 0o644


@pytest.mark.parametrize("existing", ["k.key", "k.pub"])
def test_a_key_pair_never_replaces_a_file(tmp_path: Path, existing: str) -> None:
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    (tmp_path / existing).write_text("old")
    with pytest.raises(FileExistsError, match=existing) as refused:
        write_key_pair(SigningKey.generate(), private, public)
    assert refused.value.errno == errno.EEXIST
    assert (tmp_path / existing).read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [existing]  # nothing written


def test_a_key_file_is_never_created_through_a_link_or_over_a_file(tmp_path: Path) -> None:
    """``_create_new`` itself (the check in ``write_key_pair`` can race with an attacker)."""
    (tmp_path / "there").write_text("old")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")  # dangling: O_CREAT would follow it
    for name in ("there", "link"):
        with pytest.raises(FileExistsError, match=f"already exists: .*{name}") as refused:
            _create_new(tmp_path / name, b"secret", 0o600)
        assert refused.value.errno == errno.EEXIST
    assert not (tmp_path / "nowhere").exists() and (tmp_path / "there").read_text() == "old"
    with pytest.raises(FileNotFoundError):  # any other failure is raised as it is
        _create_new(tmp_path / "missing" / "k.key", b"secret", 0o600)


def _pem_public(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem_private(key: object, password: bytes | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.mark.parametrize("pem, message", [
    (b"not a key", "not a PEM public key"),
    (_pem_public(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
     "unsupported key type"),
    (_pem_public(ec.generate_private_key(ec.SECP384R1())), "unsupported key type"),
])
def test_public_keys_slmgate_does_not_accept(pem: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        PublicKey.from_pem(pem)
    assert caught.value.file == "<pem>"


def test_a_missing_public_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read public key") as caught:
        PublicKey.load(tmp_path / "none.pub")
    assert caught.value.file == str(tmp_path / "none.pub")


@pytest.mark.parametrize("pem, message", [
    (b"not a key", "not an unencrypted PEM private key"),
    (_pem_private(ec.generate_private_key(ec.SECP256R1()), b"secret"), "not an unencrypted PEM private key"),
    (_pem_private(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
     "unsupported key type RSAPrivateKey"),  # named as read, not as its public half
    (_pem_private(ec.generate_private_key(ec.SECP384R1())), "unsupported key type"),
])
def test_private_keys_slmgate_does_not_accept(tmp_path: Path, pem: bytes, message: str) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(pem)
    with pytest.raises(InputError, match=message) as caught:
        SigningKey.load(path)
    assert caught.value.file == str(path)


def test_a_missing_private_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read private key") as caught:
        SigningKey.load(tmp_path / "none.key")
    assert caught.value.file == str(tmp_path / "none.key")
