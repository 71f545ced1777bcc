"""The trust policy's edges: key validity windows at and around both bounds, how trust.yaml's
timestamps are read (quoted, unquoted, unreadable), explicit roles, and the defaults (clock
skew, threshold, the envelope's name)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from slmgate.engine import load_bundle
from slmgate.evidence import TrustPolicy, format_time, verify_envelope
from slmgate.evidence._trust import VerificationResult
from slmgate.evidence.errors import (
    FutureEvidenceError,
    InputError,
    KeyNotValidError,
    StaleEvidenceError,
    SubjectMismatchError,
    ThresholdError,
)
from tests.conftest import NOW, World, eval_predicate

SECOND = timedelta(seconds=1)


@pytest.fixture
def trust(world: World) -> TrustPolicy:
    return load_bundle(world.policies).trust


def _eval_at(world: World, when: datetime) -> bytes:
    return world.envelope("eval-harness", "eval-result", eval_predicate(world.baseline_sha, when))


def _window(trust: TrustPolicy, valid_from: datetime | None, valid_until: datetime | None) -> TrustPolicy:
    return replace(trust, identities=tuple(
        replace(i, valid_from=valid_from, valid_until=valid_until) if i.name == "eval-harness" else i
        for i in trust.identities))


# ------------------------------------------------------------------ key validity windows

START, END = NOW - timedelta(days=3), NOW


def _verify(world: World, trust: TrustPolicy, raw: bytes) -> Any:
    # Verified at the window's end, so that the key is also valid at verification time.
    return verify_envelope(raw, trust, subject_sha256=world.candidate_sha, now=END)


@pytest.mark.parametrize("issued, verifies", [
    (START - SECOND, False),   # before valid_from
    (START, True),             # at valid_from: the window is closed on both ends
    (START + SECOND, True),
    (END - SECOND, True),
    (END, True),               # at valid_until
    (END + SECOND, False),     # after valid_until
])
def test_a_key_signs_only_inside_its_window(world: World, trust: TrustPolicy, issued: datetime,
                                            verifies: bool) -> None:
    policy = _window(trust, START, END)
    raw = _eval_at(world, issued)
    if verifies:
        assert [s.name for s in _verify(world, policy, raw).signers] == ["eval-harness"]
    else:  # refused for the claimed issue time, before the verification time is considered
        with pytest.raises(KeyNotValidError, match=f"eval-harness not valid at {format_time(issued)}$"):
            _verify(world, policy, raw)


@pytest.mark.parametrize("valid_from, valid_until", [
    (START, None), (None, END), (None, None)])
def test_an_open_ended_window_bounds_only_one_side(world: World, trust: TrustPolicy,
                                                  valid_from: datetime | None,
                                                  valid_until: datetime | None) -> None:
    policy = _window(trust, valid_from, valid_until)
    assert _verify(world, policy, _eval_at(world, START)).signers
    early = _eval_at(world, START - SECOND)
    late = _eval_at(world, END + SECOND)
    for raw, refused in ((early, valid_from is not None), (late, valid_until is not None)):
        if refused:
            with pytest.raises(KeyNotValidError):
                _verify(world, policy, raw)
        else:
            assert _verify(world, policy, raw).signers


def test_valid_at_is_inclusive_and_ignores_missing_bounds(trust: TrustPolicy) -> None:
    ident = replace(trust.identities[0], valid_from=START, valid_until=END)
    assert ident.valid_at(START) is True and ident.valid_at(END) is True
    assert ident.valid_at(START - SECOND) is False and ident.valid_at(END + SECOND) is False
    assert replace(ident, valid_from=None, valid_until=None).valid_at(START) is True


# ------------------------------------------------------------------ trust.yaml timestamps


def _trust_text(world: World, **windows: str) -> str:
    """trust.yaml with ``valid_from``/``valid_until`` lines for eval-harness, written verbatim."""
    text = (world.policies / "trust.yaml").read_text()
    lines = "".join(f"    {k}: {v}\n" for k, v in windows.items())
    marker = "    may_sign: [eval-result]\n"
    assert marker in text
    return text.replace(marker, marker + lines, 1)


def _load(world: World, text: str) -> TrustPolicy:
    return TrustPolicy.from_document(yaml.safe_load(text), base_dir=world.policies, source="trust.yaml")


def _eval_harness(policy: TrustPolicy) -> Any:
    return next(i for i in policy.identities if i.name == "eval-harness")


@pytest.mark.parametrize("quote", ["", '"'])
def test_timestamps_are_read_quoted_or_unquoted(world: World, quote: str) -> None:
    text = _trust_text(world, valid_from=f"{quote}2026-11-17T12:00:00Z{quote}",
                       valid_until=f"{quote}2026-11-20T14:00:00+02:00{quote}")
    if not quote:  # YAML itself reads an unquoted timestamp as a datetime
        assert isinstance(yaml.safe_load(text)["identities"]["eval-harness"]["valid_from"], datetime)
    ident = _eval_harness(_load(world, text))
    assert ident.valid_from == datetime(2026, 11, 17, 12, tzinfo=UTC)
    assert ident.valid_until == datetime(2026, 11, 20, 12, tzinfo=UTC)
    policy = _load(world, text)
    with pytest.raises(KeyNotValidError):
        _verify(world, policy, _eval_at(world, START - SECOND))
    with pytest.raises(KeyNotValidError):
        _verify(world, policy, _eval_at(world, END + SECOND))


@pytest.mark.parametrize("field, value, message", [
    ("valid_from", '"next tuesday"', "identities.eval-harness.valid_from: expected an RFC 3339 timestamp"),
    ("valid_until", '"next tuesday"', "identities.eval-harness.valid_until: expected an RFC 3339 timestamp"),
    ("valid_from", "2026-11-17", "identities.eval-harness.valid_from: timestamp '2026-11-17' has no UTC"),
    ("valid_until", "2026-11-20T12:00:00", "identities.eval-harness.valid_until: timestamp"),
    ("valid_until", '"2026-11-20T12:00:00"', "has no UTC offset"),
])
def test_an_unreadable_window_is_refused_not_ignored(world: World, field: str, value: str,
                                                     message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        _load(world, _trust_text(world, **{field: value}))
    assert caught.value.file == "trust.yaml"


def test_a_window_of_one_instant_is_allowed(world: World) -> None:
    ident = _eval_harness(_load(world, _trust_text(
        world, valid_from="2026-11-20T12:00:00Z", valid_until="2026-11-20T12:00:00Z")))
    assert ident.valid_from == ident.valid_until == NOW


@pytest.mark.parametrize("field", ["valid_from", "valid_until"])
def test_one_bound_alone_is_read(world: World, field: str) -> None:
    ident = _eval_harness(_load(world, _trust_text(world, **{field: "2026-11-20T12:00:00Z"})))
    assert getattr(ident, field) == NOW
    other = "valid_until" if field == "valid_from" else "valid_from"
    assert getattr(ident, other) is None


# ------------------------------------------------------------------ identities and roles


def test_an_explicit_role_is_kept_and_reported(world: World) -> None:
    text = (world.policies / "trust.yaml").read_text().replace(
        "    role: ml-lead\n", "    role: release-approver\n", 1)
    policy = _load(world, text)
    ml_lead = next(i for i in policy.identities if i.name == "ml-lead")
    assert (ml_lead.name, ml_lead.role) == ("ml-lead", "release-approver")
    gate = next(i for i in policy.identities if i.name == "slmgate-gate")
    assert gate.role == "gate"  # trust.yaml names it so; the identity is slmgate-gate


def test_an_identity_without_a_role_takes_its_name(world: World) -> None:
    doc = yaml.safe_load((world.policies / "trust.yaml").read_text())
    del doc["identities"]["ml-lead"]["role"]
    policy = TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert next(i for i in policy.identities if i.name == "ml-lead").role == "ml-lead"


@pytest.mark.parametrize("email", ["dana.example.com", 42, ["dana@example.com"]])
def test_an_identity_email_that_is_not_an_address_is_refused(world: World, email: object) -> None:
    """The e-mail is what separation of duties compares with the requester: a malformed one
    must be refused, never crash the load or silently match nobody."""
    doc = yaml.safe_load((world.policies / "trust.yaml").read_text())
    doc["identities"]["ml-lead"]["email"] = email
    with pytest.raises(InputError, match="expected an e-mail address") as caught:
        TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert caught.value.field == "identities.ml-lead.email"


def test_an_identity_email_is_read_in_lower_case(world: World) -> None:
    doc = yaml.safe_load((world.policies / "trust.yaml").read_text())
    doc["identities"]["ml-lead"]["email"] = " Dana@Example.COM "
    policy = TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert next(i for i in policy.identities if i.name == "ml-lead").email == "dana@example.com"


def test_the_verification_result_names_signer_role_and_subject(world: World, trust: TrustPolicy) -> None:
    ev = verify_envelope(_eval_at(world, NOW), trust, subject_sha256=world.candidate_sha, now=NOW)
    assert ev.ref == "envelope"  # the default name of an envelope in messages
    result = VerificationResult.passed(ev).to_json()
    assert result["signers"] == ["eval-harness (eval-harness, service)"]
    assert result["subject_sha256"] == world.candidate_sha
    assert result["issued_at"] == "2026-11-20T12:00:00Z"
    assert result["verified"] is True and result["kind"] == "eval-result"
    # made once per verified object, for the ref that object carries
    assert ev.result is ev.result and ev.result == VerificationResult.passed(ev)
    assert replace(ev, ref="eval").result.ref == "eval" and ev.result.ref == "envelope"


# ------------------------------------------------------------------ defaults


def _without(world: World, *keys: str) -> TrustPolicy:
    doc = yaml.safe_load((world.policies / "trust.yaml").read_text())
    for key in keys:
        doc.pop(key)
    return TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")


def test_the_default_clock_skew_is_five_minutes(world: World, trust: TrustPolicy) -> None:
    for policy in (_without(world, "max_clock_skew_minutes"),
                   TrustPolicy(identities=trust.identities, max_age=trust.max_age)):
        assert policy.max_clock_skew == timedelta(minutes=5)
        at_edge = _eval_at(world, NOW + timedelta(minutes=5))
        assert verify_envelope(at_edge, policy, subject_sha256=world.candidate_sha, now=NOW)
        beyond = _eval_at(world, NOW + timedelta(minutes=5) + SECOND)
        with pytest.raises(FutureEvidenceError):
            verify_envelope(beyond, policy, subject_sha256=world.candidate_sha, now=NOW)


def test_evidence_exactly_at_its_maximum_age_is_fresh(world: World, trust: TrustPolicy) -> None:
    raw = _eval_at(world, NOW - timedelta(days=14))
    assert verify_envelope(raw, trust, subject_sha256=world.candidate_sha, now=NOW)
    with pytest.raises(StaleEvidenceError, match=r"eval-result is 14\.0 days old; the maximum is 14 days"):
        verify_envelope(raw, trust, subject_sha256=world.candidate_sha, now=NOW + SECOND)


def test_the_age_of_stale_evidence_is_told_in_days(world: World, trust: TrustPolicy) -> None:
    raw = _eval_at(world, NOW - timedelta(days=15, hours=1, minutes=12, seconds=1))
    with pytest.raises(StaleEvidenceError, match=r"is 15\.1 days old"):
        verify_envelope(raw, trust, subject_sha256=world.candidate_sha, now=NOW)


def test_a_kind_without_a_threshold_needs_one_key(world: World, trust: TrustPolicy) -> None:
    policy = _without(world, "thresholds")
    assert policy.thresholds == {}
    assert verify_envelope(_eval_at(world, NOW), policy, subject_sha256=world.candidate_sha, now=NOW)


def test_a_threshold_of_distinct_keys_says_nothing_of_principals(world: World, trust: TrustPolicy) -> None:
    two = replace(trust, thresholds={**trust.thresholds, "eval-result": 2})
    with pytest.raises(ThresholdError) as caught:
        verify_envelope(_eval_at(world, NOW), two, subject_sha256=world.candidate_sha, now=NOW)
    assert caught.value.message == ("eval-result needs 2 distinct authorised key(s) of distinct "
                                    "principals, got 1 key(s): eval-harness")


def test_a_subject_mismatch_names_both_digests(world: World, trust: TrustPolicy) -> None:
    other = "ef" * 32
    with pytest.raises(SubjectMismatchError) as caught:
        verify_envelope(_eval_at(world, NOW), trust, subject_sha256=other, now=NOW)
    assert caught.value.message == (f"statement is about sha256 {world.candidate_sha[:16]}…, "
                                    f"not the candidate {other[:16]}…")


def test_no_subject_given_binds_to_no_weights(world: World, trust: TrustPolicy) -> None:
    assert verify_envelope(_eval_at(world, NOW), trust, subject_sha256=None, now=NOW)


def test_a_missing_key_file_is_named(world: World, tmp_path: Path) -> None:
    doc = yaml.safe_load((world.policies / "trust.yaml").read_text())
    doc["identities"]["runtime"]["public_key"] = "keys/nowhere.pub"
    with pytest.raises(InputError, match=r"'keys/nowhere\.pub' does not exist") as caught:
        TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert caught.value.field == "identities.runtime.public_key"


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["identities"]["runtime"].update(may_sign=["serving-config", "evals"]),
     "identities.runtime.may_sign"),
    (lambda d: d.update(identities={}), "identities"),
])
def test_a_trust_document_that_names_nothing_usable_is_refused(world: World, edit: Any, field: str) -> None:
    doc = yaml.safe_load((world.policies / "trust.yaml").read_text())
    edit(doc)
    with pytest.raises(InputError) as caught:
        TrustPolicy.from_document(doc, base_dir=world.policies, source="trust.yaml")
    assert caught.value.field == field and caught.value.file == "trust.yaml"


def test_a_person_may_hold_a_key_in_trust_yaml(world: World) -> None:
    text = (world.policies / "trust.yaml").read_text().replace(
        "    role: ml-lead\n", "    role: ml-lead\n    person: dana@example.com\n", 1)
    ml_lead = next(i for i in _load(world, text).identities if i.name == "ml-lead")
    assert ml_lead.person == ml_lead.principal == "dana@example.com"



def test_a_refusal_is_recorded_with_its_step_and_the_envelope_digest() -> None:
    import hashlib

    error = KeyNotValidError("key(s) eval-harness not valid at 2026-11-20T12:00:00Z")
    result = VerificationResult.failed("eval", b"{}", error).to_json()
    assert result == {
        "ref": "eval", "envelope_sha256": hashlib.sha256(b"{}").hexdigest(), "verified": False,
        "kind": None, "predicate_type": None, "signers": [], "issued_at": None, "subject_sha256": None,
        "failed_step": "key-validity", "reason": "key(s) eval-harness not valid at 2026-11-20T12:00:00Z"}
