"""verify_envelope against the trust policy: each failure is refused at its own step."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest

from slmgate.engine import load_bundle
from slmgate.evidence import TrustPolicy, hash_model_dir, make_statement, sign_envelope, verify_envelope
from slmgate.evidence.errors import (
    EnvelopeFormatError,
    EvidenceInvalid,
    FutureEvidenceError,
    KeyNotAuthorizedError,
    KeyNotValidError,
    KeyRevokedError,
    PayloadTypeError,
    PredicateSchemaError,
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


def test_backdating_cannot_revive_an_expired_key(world: World, trust: TrustPolicy) -> None:
    """The attack: a key expired yesterday; its holder signs today, claiming the eval finished
    two days ago (inside the key's window and the evidence's max age)."""
    backdated = NOW - timedelta(days=2)
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha, backdated))
    expired = replace(trust, identities=tuple(
        replace(i, valid_until=NOW - timedelta(days=1)) if i.name == "eval-harness" else i
        for i in trust.identities))
    with pytest.raises(KeyNotValidError, match="at verification time"):
        _verify(world, expired, raw)
    # the same envelope verified while the key was still valid is accepted
    assert _verify(world, expired, raw, now=NOW - timedelta(days=1, hours=1)).kind == "eval-result"


def test_a_key_not_yet_valid_now_is_refused(world: World, trust: TrustPolicy) -> None:
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    later = replace(trust, identities=tuple(
        replace(i, valid_from=NOW + timedelta(days=1)) if i.name == "eval-harness" else i
        for i in trust.identities))
    with pytest.raises(KeyNotValidError):
        _verify(world, later, raw)


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


# ------------------------------------------------------------------ people, not just keys


def _person_policy(trust: TrustPolicy, world: World, same_person: bool) -> TrustPolicy:
    """Approvals need 2; ml-lead and privacy-officer are one person or two."""
    people = {"ml-lead": "dana@example.com",
              "privacy-officer": "dana@example.com" if same_person else "sam@example.com"}
    return replace(trust, thresholds={**trust.thresholds, "approval": 2}, identities=tuple(
        replace(i, person=people.get(i.name)) for i in trust.identities))


def _approval(world: World, signers: list[str]) -> bytes:
    doc = world.request_doc("req-people", ["model_family_change"], [])
    raw = world.approval(signers[0], doc)
    payload = base64.b64decode(json.loads(raw)["payload"])
    return sign_envelope(payload, [world.key(s) for s in signers]).to_json()


def test_two_keys_of_one_person_do_not_meet_a_threshold_of_two(world: World, trust: TrustPolicy) -> None:
    raw = _approval(world, ["ml-lead", "privacy-officer"])
    with pytest.raises(ThresholdError, match="held by 1 principal"):
        _verify(world, _person_policy(trust, world, same_person=True), raw)
    ev = _verify(world, _person_policy(trust, world, same_person=False), raw)
    assert sorted(s.principal for s in ev.signers) == ["dana@example.com", "sam@example.com"]


def test_a_principal_is_the_person_or_else_the_identity(world: World, trust: TrustPolicy) -> None:
    ident = trust.identities[0]
    assert ident.principal == ident.name
    assert replace(ident, person="dana@example.com").principal == "dana@example.com"


def _trust_doc(world: World) -> dict:  # type: ignore[type-arg]
    import yaml

    return yaml.safe_load((world.policies / "trust.yaml").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("edit, field, message", [
    (lambda d: d["identities"]["ml-lead"].update(person=""), "identities.ml-lead.person",
     "name of the person"),
    (lambda d: d["identities"]["runtime"].update(person="ops@example.com"),
     "identities.runtime.person", "only identities of kind person"),
    (lambda d: d["thresholds"].update(aproval=2), "thresholds", "unknown predicate kinds ['aproval']"),
    (lambda d: d["max_age_days"].update(evals=3), "max_age_days", "unknown predicate kinds ['evals']"),
    (lambda d: d.update(revoked_keyids=["not-a-key-id"]), "revoked_keyids.0", "not a key id"),
    (lambda d: d["identities"]["ml-lead"].update(valid_from="2026-06-01T00:00:00Z",
                                                  valid_until="2026-01-01T00:00:00Z"),
     "identities.ml-lead.valid_until", "before valid_from"),
])
def test_trust_documents_that_would_fail_open_are_refused(world: World, edit, field, message) -> None:  # type: ignore[no-untyped-def]
    from slmgate.evidence.errors import InputError

    doc = _trust_doc(world)
    edit(doc)
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert caught.value.field == field


def test_revoked_key_ids_are_compared_in_lower_case(world: World, trust: TrustPolicy) -> None:
    doc = _trust_doc(world)
    doc["revoked_keyids"] = [world.key("eval-harness").keyid.upper()]
    revoked = TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    raw = world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha))
    with pytest.raises(KeyRevokedError):
        _verify(world, revoked, raw)


def test_a_policy_whose_identities_share_a_key_cannot_be_made(trust: TrustPolicy) -> None:
    from slmgate.evidence.errors import InputError

    twin = replace(trust.identities[0], name="twin")
    with pytest.raises(InputError, match="share one key"):
        replace(trust, identities=(*trust.identities, twin))


# ------------------------------------------------------------------ the predicate step


def test_a_malformed_predicate_is_refused_naming_the_field(world: World, trust: TrustPolicy) -> None:
    pred = eval_predicate(world.baseline_sha)
    pred["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = "high"
    raw = world.envelope("eval-harness", "eval-result", pred)
    with pytest.raises(PredicateSchemaError) as caught:
        _verify(world, trust, raw)
    assert caught.value.step == "predicate"
    assert caught.value.field == "layers.stress.metrics.accuracy.candidate"
    assert "layers.stress.metrics.accuracy.candidate" in caught.value.message


def test_a_missing_predicate_field_is_named(world: World, trust: TrustPolicy) -> None:
    doc = world.request_doc("req-x", ["model_family_change"], [])
    raw = world.envelope("ml-lead", "approval", {
        "request_id": doc["id"], "decision": "approve", "approved_at": "2026-11-20T12:00:00Z"})
    with pytest.raises(PredicateSchemaError) as caught:
        _verify(world, trust, raw)
    assert caught.value.field == "request_digest"


# ------------------------------------------------------------------ the documented order


def _order_cases(world: World, trust: TrustPolicy) -> list[tuple[type[EvidenceInvalid], TrustPolicy, bytes]]:
    """For each step, an envelope that fails it *and* the next step: the earlier one must win."""
    good_eval = eval_predicate(world.baseline_sha)
    bad_eval = eval_predicate(world.baseline_sha)
    bad_eval["layers"] = {}
    eh = world.key("eval-harness").keyid
    expired = replace(trust, identities=tuple(
        replace(i, valid_until=NOW - timedelta(days=30)) if i.name == "eval-harness" else i
        for i in trust.identities))
    revoked_and_expired = replace(expired, revoked_keyids=frozenset({eh}))
    two = replace(trust, thresholds={**trust.thresholds, "eval-result": 2, "serving-config": 2})
    other = hash_model_dir(world.other).root_digest

    def env(kind: str, pred: dict, signer: str = "eval-harness", subject: str | None = None) -> bytes:  # type: ignore[type-arg]
        return world.envelope(signer, kind, pred, subject=subject)

    def edit(raw: bytes, **fields: str) -> bytes:
        doc = json.loads(raw)
        doc.update(fields)
        return json.dumps(doc).encode()

    not_a_statement = sign_envelope(b'{"hello": "world"}', [world.key("eval-harness")]).to_json()
    return [
        (EnvelopeFormatError, trust, edit(env("eval-result", good_eval), payload="%%", payloadType="x")),
        (PayloadTypeError, trust, edit(_sig_altered(world), payloadType="application/json")),
        (SignatureError, trust, _not_a_statement_unsigned(world)),
        (StatementFormatError, replace(trust, revoked_keyids=frozenset({eh})), not_a_statement),
        (KeyRevokedError, revoked_and_expired, env("eval-result", good_eval)),
        (KeyNotValidError, expired, env("serving-config", {**_serving(), "captured_at": _at()})),
        (KeyNotAuthorizedError, two, env("serving-config", _serving())),
        (ThresholdError, two, env("eval-result", bad_eval)),
        (PredicateSchemaError, trust, env("eval-result", bad_eval, subject=other)),
        (SubjectMismatchError, trust, env("eval-result", eval_predicate(
            world.baseline_sha, NOW + timedelta(days=1)), subject=other)),
        (FutureEvidenceError, replace(trust, max_age={}), env("eval-result", eval_predicate(
            world.baseline_sha, NOW + timedelta(days=1)))),
    ]


def _serving() -> dict:  # type: ignore[type-arg]
    from tests.conftest import serving_predicate

    return serving_predicate()


def _at() -> str:
    from slmgate.evidence import format_time

    return format_time(NOW)


def _not_a_statement_unsigned(world: World) -> bytes:
    raw = sign_envelope(b'{"hello": "world"}', [world.key("eval-harness")]).to_json()
    doc = json.loads(raw)
    doc["signatures"][0]["sig"] = base64.b64encode(b"\x00" * 64).decode()
    return json.dumps(doc).encode()


def test_steps_run_in_the_documented_order(world: World, trust: TrustPolicy) -> None:
    documented = re.findall(r"\b(\w+Error|VerificationUnavailable)\b", verify_envelope.__doc__ or "")
    cases = _order_cases(world, trust)
    observed = []
    for expected, policy, raw in cases:
        with pytest.raises(EvidenceInvalid) as caught:
            _verify(world, policy, raw)
        assert type(caught.value) is expected, (expected.__name__, caught.value.message)
        observed.append(expected.__name__)
    assert observed == documented[: len(observed)]
    assert documented[len(observed):] == ["StaleEvidenceError", "VerificationUnavailable"]


def test_a_trust_document_whose_identities_share_a_key_names_the_file(world: World) -> None:
    from slmgate.evidence.errors import InputError

    doc = _trust_doc(world)
    doc["identities"]["ml-lead"]["public_key"] = doc["identities"]["privacy-officer"]["public_key"]
    with pytest.raises(InputError, match="share one key") as caught:
        TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert caught.value.file == "trust.yaml" and caught.value.field.endswith(".public_key")
