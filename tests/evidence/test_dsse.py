"""DSSE envelopes and keys: PAE, both base64 alphabets, several signatures, mutation never passes."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmgate.evidence import Envelope, PublicKey, SigningKey, pae, sign_envelope
from slmgate.evidence.errors import EnvelopeFormatError, InputError

ED = SigningKey.generate("ed25519")
EC = SigningKey.generate("ecdsa-p256")
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'


def test_pae_matches_the_dsse_specification_example() -> None:
    # The worked example from the DSSE v1.0 protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize("key", [ED, EC], ids=["ed25519", "ecdsa-p256"])
def test_sign_and_verify_round_trip(key: SigningKey) -> None:
    env = Envelope.from_json(sign_envelope(PAYLOAD, [key]).to_json())
    assert env.payload == PAYLOAD
    assert [k.keyid for k in env.keys_that_signed([key.public_key])] == [key.keyid]


def test_keyid_is_derived_from_the_public_key_and_is_only_a_hint() -> None:
    pub = PublicKey.from_pem(ED.public_key.to_pem())
    assert pub.keyid == ED.keyid and len(pub.keyid) == 64
    doc = json.loads(sign_envelope(PAYLOAD, [ED]).to_json())
    doc["signatures"][0]["keyid"] = EC.keyid  # lie about who signed
    env = Envelope.from_json(json.dumps(doc).encode())
    assert env.keys_that_signed([EC.public_key]) == []
    assert [k.keyid for k in env.keys_that_signed([ED.public_key])] == [ED.keyid]


def test_several_signatures_count_distinct_keys() -> None:
    env = sign_envelope(PAYLOAD, [ED, EC, ED])
    found = env.keys_that_signed([ED.public_key, EC.public_key, ED.public_key])
    assert sorted(k.keyid for k in found) == sorted([ED.keyid, EC.keyid])


def test_url_safe_and_unpadded_base64_are_accepted() -> None:
    doc = json.loads(sign_envelope(PAYLOAD + b"\xff\xfe?>", [ED]).to_json())
    raw = base64.b64decode(doc["payload"])
    doc["payload"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    env = Envelope.from_json(json.dumps(doc).encode())
    assert env.payload == raw and env.keys_that_signed([ED.public_key])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("payload"), "lacks payload"),
    (lambda d: d.update(signatures=[]), "at least 1 signature"),
    (lambda d: d.update(payload="not base64!"), "not base64"),
    (lambda d: d["signatures"][0].update(sig="@@"), "not base64"),
    (lambda d: d.update(payloadType=7), "payloadType"),
    (lambda d: d.update(signatures=[d["signatures"][0]] * 17), "at most 16 signatures"),
])
def test_malformed_envelopes_are_refused_with_a_reason(mutate, message) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(sign_envelope(PAYLOAD, [ED]).to_json())
    mutate(doc)
    with pytest.raises(EnvelopeFormatError, match=message):
        Envelope.from_json(json.dumps(doc).encode())


def test_not_json_is_refused() -> None:
    with pytest.raises(EnvelopeFormatError, match="not JSON"):
        Envelope.from_json(b"\x00garbage")


def test_private_key_round_trip_and_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from slmgate.evidence import write_key_pair

    write_key_pair(EC, tmp_path / "k.key", tmp_path / "k.pub")
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(tmp_path / "k.key").keyid == EC.keyid
    assert PublicKey.load(tmp_path / "k.pub").keyid == EC.keyid
    with pytest.raises(InputError, match=r"k\.pub"):
        SigningKey.load(tmp_path / "k.pub")


@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7),
       target=st.sampled_from(["payload", "sig", "type"]))
def test_flipping_any_bit_never_verifies(position: int, bit: int, target: str) -> None:
    env = sign_envelope(PAYLOAD, [ED])
    if target == "payload":
        data = bytearray(env.payload)
        data[position % len(data)] ^= 1 << bit
        env = Envelope(env.payload_type, bytes(data), env.signatures)
    elif target == "sig":
        sig = bytearray(env.signatures[0].sig)
        sig[position % len(sig)] ^= 1 << bit
        env = Envelope(env.payload_type, env.payload,
                       (type(env.signatures[0])(env.signatures[0].keyid, bytes(sig)),))
    else:
        t = bytearray(env.payload_type.encode())
        t[position % len(t)] ^= 1 << bit
        env = Envelope(t.decode("latin-1"), env.payload, env.signatures)
    assert env.keys_that_signed([ED.public_key]) == []
