"""verify_envelope against the trust policy: each failure is refused at its own step."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from slmgate.engine import load_bundle
from slmgate.evidence import TrustPolicy, make_statement, sign_envelope, verify_envelope
from slmgate.evidence.errors import (
    EnvelopeFormatError,
    EvidenceInvalid,
    FutureEvidenceError,
    KeyNotAuthorizedError,
    KeyNotValidError,
    KeyRevokedError,
    PayloadTypeError,
    SignatureError,
    StaleEvidenceError,
    StatementFormatError,
    SubjectMismatchError,
    ThresholdError,
    VerificationUnavailable,
)
from tests.conftest import MODEL, NOW, World, eval_predicate


@pytest.fixture
def trust(world: World) -> TrustPolicy:
    return load_bundle(world.policies).trust


def _verify(world: World, trust: TrustPolicy, raw: bytes, **kw):  # type: ignore[no-untyped-def]
    return verify_envelope(raw, trust, subject_sha256=kw.pop("subject", world.candidate_sha),
                           now=kw.pop("now", NOW), ref="t")


def _edit(raw: bytes, fn) -> bytes:  # type: ignore[no-untyped-def]
    doc = json.loads(raw)
    fn(doc)
    return json.dumps(doc).encode()


def test_good_envelope_verifies_with_signer_identity(world: World, trust: TrustPolicy) -> None:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    ev = _verify(world, trust, raw)
    assert ev.kind == "eval-result"
    assert [s.name for s in ev.signers] == ["eval-harness"]
    assert ev.statement.raw == base64.b64decode(json.loads(raw)["payload"])


def test_could_not_verify_is_a_kind_of_invalid() -> None:
    assert issubclass(VerificationUnavailable, EvidenceInvalid)


def _payload_altered(world: World) -> bytes:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    def bump(doc):  # type: ignore[no-untyped-def]
        st = json.loads(base64.b64decode(doc["payload"]))
        st["predicate"]["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = 0.99
        doc["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    return _edit(raw, bump)


def _sig_altered(world: World) -> bytes:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    def flip(doc):  # type: ignore[no-untyped-def]
        sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
        sig[5] ^= 0x40
        doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return _edit(raw, flip)


def _unknown_key(world: World) -> bytes:
    from slmgate.evidence import SigningKey
    st = make_statement(MODEL, world.candidate_sha, "eval-result", eval_predicate(world.baseline_sha))
    return sign_envelope(st, [SigningKey.generate()]).to_json()


def _wrong_kind_for_key(world: World) -> bytes:
    return world.envelope("runtime", "eval-result", eval_predicate(world.baseline_sha))


def _other_model(world: World) -> bytes:
    from slmgate.evidence import hash_model_dir
    other = hash_model_dir(world.other).root_digest
    return world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha), subject=other)


def _stale(world: World) -> bytes:
    return world.envelope("eval-harness", "eval-result",
                          eval_predicate(world.baseline_sha, NOW - timedelta(days=15)))


def _future(world: World) -> bytes:
    return world.envelope("eval-harness", "eval-result",
                          eval_predicate(world.baseline_sha, NOW + timedelta(hours=1)))


def _payload_type(world: World) -> bytes:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    return _edit(raw, lambda d: d.update(payloadType="application/json"))


def _not_a_statement(world: World) -> bytes:
    return sign_envelope(b'{"hello": "world"}', [world.key("eval-harness")]).to_json()


def _no_timestamp(world: World) -> bytes:
    pred = eval_predicate(world.baseline_sha)
    del pred["finished_at"]
    return world.envelope("eval-harness", "eval-result", pred)


def _bad_base64(world: World) -> bytes:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    return _edit(raw, lambda d: d.update(payload="%%%not-base64%%%"))


CASES = {
    "payload-altered": (_payload_altered, SignatureError),
    "signature-altered": (_sig_altered, SignatureError),
    "unknown-key": (_unknown_key, SignatureError),
    "key-not-allowed-for-type": (_wrong_kind_for_key, KeyNotAuthorizedError),
    "subject-of-another-model": (_other_model, SubjectMismatchError),
    "stale": (_stale, StaleEvidenceError),
    "future": (_future, FutureEvidenceError),
    "payload-type-mismatch": (_payload_type, PayloadTypeError),
    "not-a-statement": (_not_a_statement, StatementFormatError),
    "no-timestamp": (_no_timestamp, StatementFormatError),
    "invalid-base64": (_bad_base64, EnvelopeFormatError),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tampered_or_untrusted_evidence_is_refused_at_its_step(
    name: str, world: World, trust: TrustPolicy
) -> None:
    build, error = CASES[name]
    with pytest.raises(error):
        _verify(world, trust, build(world))


def test_revoked_key_is_refused(world: World, trust: TrustPolicy) -> None:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    revoked = replace(trust, revoked_keyids=frozenset({world.key("eval-harness").keyid}))
    with pytest.raises(KeyRevokedError):
        _verify(world, revoked, raw)


def test_key_outside_its_validity_window_is_refused(world: World, trust: TrustPolicy) -> None:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    expired = replace(trust, identities=tuple(
        replace(i, valid_until=NOW - timedelta(days=1)) if i.name == "eval-harness" else i
        for i in trust.identities))
    with pytest.raises(KeyNotValidError):
        _verify(world, expired, raw)


def test_threshold_counts_distinct_keys_not_signatures(world: World, trust: TrustPolicy) -> None:
    two = replace(trust, thresholds={**trust.thresholds, "eval-result": 2})
    once_twice = world.envelope(["eval-harness", "eval-harness"], "eval-result",
                                eval_predicate(world.baseline_sha))
    with pytest.raises(ThresholdError, match="needs 2 distinct"):
        _verify(world, two, once_twice)
    widened = replace(two, identities=tuple(
        replace(i, may_sign=i.may_sign | {"eval-result"}) if i.name == "runtime" else i
        for i in two.identities))
    both = world.envelope(["eval-harness", "runtime"], "eval-result", eval_predicate(world.baseline_sha))
    assert len(_verify(world, widened, both).signers) == 2


def test_kind_without_max_age_cannot_be_verified(world: World, trust: TrustPolicy) -> None:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    no_age = replace(trust, max_age={k: v for k, v in trust.max_age.items() if k != "eval-result"})
    with pytest.raises(VerificationUnavailable):
        _verify(world, no_age, raw)
