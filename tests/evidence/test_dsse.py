"""DSSE envelopes and keys: PAE, both base64 alphabets, several signatures, key ids as hints,
strict parsing, and mutation of any byte never verifying other content."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from slmgate.evidence._dsse import b64decode
from slmgate.evidence._statement import strict_json
from slmgate.evidence.errors import EnvelopeFormatError, EvidenceInvalid, InputError

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
    (lambda d: d.update(payload=7), "payload must be a base64 string"),
    (lambda d: d["signatures"][0].update(sig=None), r"signatures\[0\].sig must be a base64 string"),
    (lambda d: d["signatures"][0].update(keyid=7), r"signatures\[0\].keyid must be a string"),
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


@pytest.mark.parametrize("raw, message", [
    (b'{"payload": "e30=", "payload": "e30=", "payloadType": "t", "signatures": []}', "twice"),
    (b'{"payload": "e30=", "payloadType": "t", "signatures": [{"sig": "AA==", "sig": "AQ=="}]}',
     "twice"),
    (b'{"payload": "e30=", "payloadType": "t", "signatures": [{"sig": "AA==", "x": NaN}]}', "NaN"),
])
def test_repeated_keys_and_non_finite_numbers_are_refused(raw: bytes, message: str) -> None:
    """Two parsers must never read one envelope two ways (JSON leaves repeated keys open)."""
    with pytest.raises(EnvelopeFormatError, match=message):
        Envelope.from_json(raw)


def _with_payload(text: str) -> bytes:
    doc = json.loads(sign_envelope(PAYLOAD, [ED]).to_json())
    doc["payload"] = text
    return json.dumps(doc).encode()


@pytest.mark.parametrize("text, message", [
    ("ab+_", "not a mix"),  # standard and URL-safe letters in one string
    ("abd", "not canonical"),  # "d" (29) leaves a stray bit set in the last character
    ("abc==", "wrong length or padding"),
    ("a", "wrong length or padding"),
    ("YQ=", "wrong length or padding"),
    ("YQ==YQ==", "not base64"),  # padding in the middle
    ("Y Q=", "not base64"),
])
def test_only_canonical_base64_in_one_alphabet_is_accepted(text: str, message: str) -> None:
    with pytest.raises(EnvelopeFormatError, match=message):
        Envelope.from_json(_with_payload(text))


@pytest.mark.parametrize("text, decoded", [
    ("YQ==", b"a"), ("YQ", b"a"), ("-_8=", b"\xfb\xff"), ("+/8", b"\xfb\xff"), ("", b""),
])
def test_padded_unpadded_standard_and_url_safe_spellings_decode(text: str, decoded: bytes) -> None:
    assert Envelope.from_json(_with_payload(text)).payload == decoded


def test_a_key_id_hint_is_tried_first_but_never_required(monkeypatch: pytest.MonkeyPatch) -> None:
    others = [SigningKey.generate() for _ in range(5)]
    candidates = [k.public_key for k in others] + [ED.public_key]
    calls: list[str] = []
    real = PublicKey.verifies

    def counting(self: PublicKey, signature: bytes, data: bytes) -> bool:
        calls.append(self.keyid)
        return real(self, signature, data)

    monkeypatch.setattr(PublicKey, "verifies", counting)
    env = sign_envelope(PAYLOAD, [ED])
    assert env.keys_that_signed(candidates) == [ED.public_key]
    assert calls == [ED.keyid]  # the hint named the right key: one verification
    calls.clear()
    for hint in ("", others[0].keyid, "not-a-key-id"):
        sig = type(env.signatures[0])(hint, env.signatures[0].sig)
        lying = Envelope(env.payload_type, env.payload, (sig,))
        assert lying.keys_that_signed(candidates) == [ED.public_key]
    calls.clear()
    unsigned = sign_envelope(PAYLOAD, [EC])
    assert unsigned.keys_that_signed(candidates) == []
    assert sorted(calls) == sorted(k.keyid for k in candidates)  # every key tried before giving up


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
       target=st.sampled_from(["payload", "sig", "type"]), key=st.sampled_from([ED, EC]))
def test_flipping_any_bit_never_verifies(position: int, bit: int, target: str, key: SigningKey) -> None:
    env = sign_envelope(PAYLOAD, [key])
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
    assert env.keys_that_signed([ED.public_key, EC.public_key]) == []


# --------------------------------------------- any byte of the serialized envelope, full verify

SUBJECT = "ab" * 32
SIGNED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STATEMENT = make_statement("m", SUBJECT, "rollback-plan", {
    "created_at": "2026-11-20T12:00:00Z", "owner": "release-manager", "mechanism": "flag",
    "max_rollback_minutes": 10, "last_drill": "2026-11-01"})
TRUST = TrustPolicy(
    identities=tuple(TrustedIdentity(n, "service", n, k.public_key, frozenset(PREDICATE_TYPES))
                     for n, k in (("ed", ED), ("ec", EC))),
    max_age={k: timedelta(days=30) for k in PREDICATE_TYPES})
SIGNED = {"ed": sign_envelope(STATEMENT, [ED]).to_json(), "ec": sign_envelope(STATEMENT, [EC]).to_json(),
          "both": sign_envelope(STATEMENT, [EC, ED]).to_json()}


def _signed_regions(raw: bytes) -> list[range]:
    """Byte ranges of the payload and payloadType values: what the signatures cover."""
    regions = []
    for value in (json.loads(raw)["payload"], IN_TOTO_PAYLOAD_TYPE):
        start = raw.index(b'"' + value.encode() + b'"') + 1
        regions.append(range(start, start + len(value)))
    return regions


def _assert_mutation_is_harmless(original: bytes, position: int, value: int) -> None:
    """A mutated envelope either fails verification, or verifies exactly what was signed —
    the change then fell on a key id hint, insignificant whitespace, a JSON key we ignore or an
    equivalent base64 spelling of a signature; never on the payload or its type."""
    mutated = original[:position] + bytes([value]) + original[position + 1:]
    try:
        ev = verify_envelope(mutated, TRUST, subject_sha256=SUBJECT, now=SIGNED_AT)
    except EvidenceInvalid:
        return
    assert ev.statement.raw == STATEMENT
    env = Envelope.from_json(mutated)
    assert (env.payload_type, env.payload) == (IN_TOTO_PAYLOAD_TYPE, STATEMENT)
    assert not any(position in r for r in _signed_regions(original)), (position, chr(value))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), which=st.sampled_from(sorted(SIGNED)))
def test_mutating_any_byte_of_the_envelope_never_verifies_other_content(
    data: st.DataObject, which: str
) -> None:
    raw = SIGNED[which]
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="position")
    value = data.draw(st.integers(min_value=0, max_value=255).filter(lambda v: v != raw[position]),
                      label="value")
    _assert_mutation_is_harmless(raw, position, value)


@pytest.mark.parametrize("which", sorted(SIGNED))
def test_every_byte_position_flipped_never_verifies_other_content(which: str) -> None:
    raw = SIGNED[which]
    for position in range(len(raw)):
        _assert_mutation_is_harmless(raw, position, raw[position] ^ 0x01)


def test_sixteen_signatures_are_the_most_an_envelope_may_carry() -> None:
    doc = json.loads(sign_envelope(PAYLOAD, [ED]).to_json())
    doc["signatures"] = [doc["signatures"][0]] * 16
    env = Envelope.from_json(json.dumps(doc).encode())
    assert len(env.signatures) == 16
    assert [k.keyid for k in env.keys_that_signed([ED.public_key])] == [ED.keyid]


def test_a_signature_without_a_keyid_carries_no_hint() -> None:
    doc = json.loads(sign_envelope(PAYLOAD, [ED]).to_json())
    del doc["signatures"][0]["keyid"]
    env = Envelope.from_json(json.dumps(doc).encode())
    assert env.signatures[0].keyid == ""
    assert json.loads(env.to_json())["signatures"][0]["keyid"] == ""


def test_signing_needs_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least one signing key"):
        sign_envelope(PAYLOAD, [])


# ------------------------- the fast paths (pybase64, orjson) decide as the strict readers do

def _reference_b64decode(text: str) -> bytes | str:
    """The base64 rules as written with the standard library alone (binascii's strict mode),
    before the padded standard spelling was given a fast path: the bytes, or the refusal."""
    body = text.rstrip("=")
    if "-" in body or "_" in body:
        if "+" in body or "/" in body:
            return "not a mix"
        body = body.translate(str.maketrans("-_", "+/"))
    padding = len(text) - len(body)
    if padding > 2 or len(body) % 4 == 1 or (padding and (len(body) + padding) % 4):
        return "wrong length or padding"
    try:
        data = binascii.a2b_base64(body + "=" * (-len(body) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        return "not base64"
    tail = len(data) % 3
    if tail and binascii.b2a_base64(data[-tail:], newline=False).rstrip(b"=") != body[-(tail + 1):].encode():
        return "not canonical"
    return data


def _b64(text: str) -> bytes | str:
    try:
        return b64decode(text, what="payload")
    except EnvelopeFormatError as exc:
        for reason in ("not a mix", "wrong length or padding", "not canonical", "not base64"):
            if reason in exc.message:
                return reason
        raise


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@st.composite
def _one_character_changed(draw: st.DrawFn) -> str:
    text = base64.b64encode(draw(st.binary(min_size=1, max_size=40))).decode()
    at = draw(st.integers(0, len(text) - 1))
    return text[:at] + draw(st.sampled_from(_ALPHABET + "=-_")) + text[at + 1:]


@settings(max_examples=1500, deadline=None)
@given(st.one_of(
    st.text(alphabet="AQgwBRhxCDEiy+/-_=09 \n.\u00e9", max_size=12),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    _one_character_changed(),
))
def test_base64_is_decided_as_the_strict_standard_library_rules_decide(text: str) -> None:
    """The padded standard spelling is decoded by pybase64 and its last character checked for
    stray bits by table; every spelling must get the bytes or the refusal the strict
    standard-library rules give, with pybase64's C extension and with its pure-Python fallback."""
    expected = _reference_b64decode(text)
    assert _b64(text) == expected
    with _pybase64_fallback():
        assert _b64(text) == expected


@contextlib.contextmanager
def _pybase64_fallback() -> Iterator[None]:
    """pybase64 as it is where its C extension cannot be built."""
    import pybase64._fallback

    import slmgate.evidence._dsse as dsse

    original = dsse.pybase64
    dsse.pybase64 = pybase64._fallback  # type: ignore[assignment]
    try:
        yield
    finally:
        dsse.pybase64 = original


@pytest.mark.parametrize("last", list(_ALPHABET))
def test_every_last_character_before_padding_is_judged_as_the_reference_judges(last: str) -> None:
    for text in (f"AA{last}=", f"A{last}==", f"AAAAAA{last}=", f"AAAAA{last}=="):
        assert _b64(text) == _reference_b64decode(text), text
        with _pybase64_fallback():
            assert _b64(text) == _reference_b64decode(text), text


def _indented(doc: object) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


@pytest.mark.parametrize("raw", [
    sign_envelope(PAYLOAD, [ED, EC]).to_json(),
    sign_envelope(PAYLOAD, [ED]).to_json().rstrip(b"\n"),  # no final newline: not canonical
    json.dumps(json.loads(sign_envelope(PAYLOAD, [ED]).to_json()), sort_keys=True,
               separators=(",", ":")).encode(),  # compact canonical
    json.dumps(json.loads(sign_envelope(PAYLOAD, [ED]).to_json())).encode(),  # spaced, unsorted
    b'{\n  "payload": "e30=",\n  "payload": "e30=",\n  "payloadType": "t",\n  "signatures": []\n}\n',
    b'{\n  "payload": "e30=",\n  "payloadType": "t",\n  "signatures": [\n    {\n      "sig": "AA==",\n'
    b'      "sig": "AQ=="\n    }\n  ]\n}\n',
    _indented({"payload": "e30=", "payloadType": "t", "signatures": [{"keyid": "\u00e9", "sig": "AA=="}]}),
    _indented({"payload": "e30=", "payloadType": "t", "signatures": [{"sig": "AA==", "x": 1e300}]}),
])
def test_an_envelope_is_read_as_the_strict_parser_reads_it(raw: bytes) -> None:
    """Envelopes as ``to_json`` writes them are read by orjson (the canonical indented form);
    every other spelling by the strict parser: both give one verdict and one value."""
    def read(parse: Any) -> Any:
        try:
            env = parse(raw)
        except EnvelopeFormatError as exc:
            return ("refused", exc.message)
        return ("ok", env)

    strict = read(lambda r: _strict_envelope(r))
    assert read(Envelope.from_json) == strict


def _strict_envelope(raw: bytes) -> Envelope:
    """``Envelope.from_json`` with the strict standard-library parser only."""
    import slmgate.evidence._dsse as dsse

    original = dsse.canonical_or_strict_json
    dsse.canonical_or_strict_json = strict_json  # type: ignore[assignment]
    try:
        return Envelope.from_json(raw)
    finally:
        dsse.canonical_or_strict_json = original


def test_an_envelope_as_written_is_not_read_by_the_strict_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken (so its check is the one that must hold): an envelope as
    ``to_json`` writes it never reaches strict_json; the same envelope spelt otherwise does."""
    calls: list[bytes] = []
    monkeypatch.setattr("slmgate.evidence._statement.strict_json",
                        lambda raw, error, what: calls.append(raw) or strict_json(raw, error, what))
    written = sign_envelope(PAYLOAD, [ED, EC]).to_json()
    assert Envelope.from_json(written).payload == PAYLOAD
    assert calls == []
    spaced = json.dumps(json.loads(written), indent=1).encode() + b"\n"
    assert Envelope.from_json(spaced).payload == PAYLOAD
    assert calls == [spaced]


@pytest.mark.parametrize("data", [b"abc", b"abcd", b"abcde", b"\xff" * 1000, b"\x00" * 1001])
def test_the_padded_standard_spelling_is_not_decoded_by_the_slow_path(
    data: bytes, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spelling ``to_json`` writes (padded, standard alphabet: no, one or two ``=``) is
    decoded at once; only other spellings reach binascii's strict decoder."""
    calls: list[str] = []
    strict = binascii.a2b_base64
    monkeypatch.setattr(binascii, "a2b_base64", lambda text, **kw: calls.append(text) or strict(text, **kw))
    text = base64.b64encode(data).decode()
    assert b64decode(text, what="payload") == data
    assert calls == []
    unpadded = text.rstrip("=")
    assert b64decode(unpadded, what="payload") == data
    assert len(calls) == (1 if unpadded != text else 0)
