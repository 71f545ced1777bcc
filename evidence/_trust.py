"""The trust policy and envelope verification against it.

``verify_envelope`` is the one place evidence is accepted; its docstring is the order. It keeps
no state between calls: the trust policy is an immutable value (its key index is built once,
when the policy is made).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from ._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope
from ._keys import PublicKey
from ._predicates import check_predicate
from ._statement import PREDICATE_TYPES, Statement, format_time, parse_time
from .errors import (
    EvidenceInvalid,
    FutureEvidenceError,
    InputError,
    KeyNotAuthorizedError,
    KeyNotValidError,
    KeyRevokedError,
    PayloadTypeError,
    SignatureError,
    StaleEvidenceError,
    SubjectMismatchError,
    ThresholdError,
    VerificationUnavailable,
)

_KEYID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TrustedIdentity:
    """A service identity or a person, with the one key it signs with.

    A person may hold several keys (a laptop and a hardware token, say): one identity per key,
    each naming the same ``person``. Thresholds count distinct keys *and* distinct principals,
    so one person's two keys never count twice.
    """

    name: str
    kind: str  # "service" | "person"
    role: str
    key: PublicKey
    may_sign: frozenset[str]
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    person: str | None = None  # who holds the key, when one person holds several
    email: str | None = None  # matched (case-insensitively) with a request's ``requested_by``

    @property
    def principal(self) -> str:
        """Who is counted for thresholds: the ``person`` holding the key, else the identity."""
        return self.person or self.name

    def valid_at(self, moment: datetime) -> bool:
        if self.valid_from and moment < self.valid_from:
            return False
        return not (self.valid_until and moment > self.valid_until)


@dataclass(frozen=True)
class TrustPolicy:
    """Who may vouch for what: identities and their keys, revocations, thresholds per predicate
    kind (distinct keys held by distinct principals), and the maximum age of each kind."""

    identities: tuple[TrustedIdentity, ...]
    revoked_keyids: frozenset[str] = frozenset()
    thresholds: Mapping[str, int] = field(default_factory=dict)
    max_age: Mapping[str, timedelta] = field(default_factory=dict)
    max_clock_skew: timedelta = timedelta(minutes=5)
    _by_keyid: Mapping[str, TrustedIdentity] = field(init=False, repr=False, compare=False)
    _keys: tuple[PublicKey, ...] = field(init=False, repr=False, compare=False)
    _key_index: Mapping[str, PublicKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_keyid: dict[str, TrustedIdentity] = {}
        for ident in self.identities:
            if ident.key.keyid in by_keyid:
                raise InputError(
                    f"identities {by_keyid[ident.key.keyid].name!r} and {ident.name!r} share one key",
                    field=f"identities.{ident.name}.public_key",
                    advice="each identity needs its own key, or thresholds mean nothing",
                )
            by_keyid[ident.key.keyid] = ident
        object.__setattr__(self, "_by_keyid", by_keyid)
        object.__setattr__(self, "_keys", tuple(i.key for i in self.identities))
        object.__setattr__(self, "_key_index", {i.key.keyid: i.key for i in self.identities})

    @property
    def keys(self) -> tuple[PublicKey, ...]:
        """Every trusted key (revoked ones too: revocation is judged after the signature)."""
        return self._keys

    def identity_of(self, key: PublicKey) -> TrustedIdentity:
        return self._by_keyid[key.keyid]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, base_dir: Path, source: str) -> TrustPolicy:
        """Build from a validated ``trust.yaml`` document; key paths are relative to ``base_dir``."""
        identities = []
        for name, ident in doc.get("identities", {}).items():
            where = f"identities.{name}"
            key_path = base_dir / ident["public_key"]
            if not key_path.is_file():
                raise InputError(
                    f"public key file {ident['public_key']!r} does not exist",
                    file=source, field=f"{where}.public_key",
                    advice="run `slmgate init` to generate keys, or fix the path",
                )
            key = PublicKey.load(key_path)
            unknown = sorted(set(ident["may_sign"]) - PREDICATE_TYPES.keys())
            if unknown:
                raise InputError(
                    f"unknown predicate kinds {unknown}; expected some of {sorted(PREDICATE_TYPES)}",
                    file=source, field=f"{where}.may_sign",
                )
            try:
                valid_from = _optional_time(ident.get("valid_from"), f"{where}.valid_from")
                valid_until = _optional_time(ident.get("valid_until"), f"{where}.valid_until")
            except ValueError as exc:
                raise InputError(str(exc), file=source) from exc
            if valid_from and valid_until and valid_until < valid_from:
                raise InputError("valid_until is before valid_from", file=source,
                                 field=f"{where}.valid_until")
            person = ident.get("person")
            if person is not None and (not isinstance(person, str) or not person.strip()):
                raise InputError("expected the name of the person holding this key",
                                 file=source, field=f"{where}.person")
            if person is not None and ident["kind"] != "person":
                raise InputError("only identities of kind person name a person",
                                 file=source, field=f"{where}.person")
            email = ident.get("email")
            if email is not None and (not isinstance(email, str) or "@" not in email):
                raise InputError("expected an e-mail address", file=source, field=f"{where}.email")
            identities.append(
                TrustedIdentity(
                    name=name, kind=ident["kind"], role=ident.get("role") or name, key=key,
                    may_sign=frozenset(ident["may_sign"]),
                    valid_from=valid_from, valid_until=valid_until, person=person,
                    email=email.strip().lower() if email else None,
                )
            )
        if not identities:
            raise InputError("a trust policy must name at least one identity",
                             file=source, field="identities")
        for section in ("thresholds", "max_age_days"):
            unknown = sorted(set(doc.get(section, {})) - PREDICATE_TYPES.keys())
            if unknown:
                raise InputError(
                    f"unknown predicate kinds {unknown}; expected some of {sorted(PREDICATE_TYPES)}",
                    file=source, field=section,
                    advice="a misspelt kind would silently fall back to the default",
                )
        revoked = [str(k).lower() for k in doc.get("revoked_keyids", [])]
        for i, keyid in enumerate(revoked):
            if not _KEYID.fullmatch(keyid):
                raise InputError(
                    f"{keyid!r} is not a key id", file=source, field=f"revoked_keyids.{i}",
                    advice="a key id is the sha256 (hex) of the key's DER SubjectPublicKeyInfo, "
                           "as `slmgate keys generate` prints it",
                )
        try:
            return cls(
                identities=tuple(identities),
                revoked_keyids=frozenset(revoked),
                thresholds=dict(doc.get("thresholds", {})),
                max_age={k: timedelta(days=v) for k, v in doc.get("max_age_days", {}).items()},
                max_clock_skew=timedelta(minutes=doc.get("max_clock_skew_minutes", 5)),
            )
        except InputError as exc:  # e.g. two identities sharing one key: say which file
            raise InputError(exc.detail, file=source, field=exc.field, advice=exc.advice) from exc


def _optional_time(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return parse_time(value.isoformat(), what=what)
    return parse_time(str(value), what=what)


@dataclass(frozen=True)
class VerifiedEvidence:
    """Evidence that passed every step; ``signers`` are the identities that vouched for it."""

    ref: str
    statement: Statement
    signers: tuple[TrustedIdentity, ...]
    envelope_sha256: str

    @property
    def kind(self) -> str:
        return self.statement.kind

    @cached_property
    def result(self) -> VerificationResult:
        """``VerificationResult.passed(self)``, made once per object: what-if's verification
        cache returns one object for every decision that holds the envelope."""
        return VerificationResult.passed(self)


@dataclass(frozen=True)
class VerificationResult:
    """What verification concluded about one envelope, kept for the decision and the packet."""

    ref: str
    envelope_sha256: str
    verified: bool
    kind: str | None = None
    predicate_type: str | None = None
    signers: tuple[str, ...] = ()
    issued_at: str | None = None
    subject_sha256: str | None = None
    failed_step: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "envelope_sha256": self.envelope_sha256, "verified": self.verified,
            "kind": self.kind, "predicate_type": self.predicate_type, "signers": list(self.signers),
            "issued_at": self.issued_at, "subject_sha256": self.subject_sha256,
            "failed_step": self.failed_step, "reason": self.reason,
        }

    @classmethod
    def passed(cls, ev: VerifiedEvidence) -> VerificationResult:
        st = ev.statement
        return cls(
            ref=ev.ref, envelope_sha256=ev.envelope_sha256, verified=True, kind=st.kind,
            predicate_type=st.predicate_type,
            signers=tuple(f"{s.name} ({s.role}, {s.kind}{f': {s.person}' if s.person else ''})"
                          for s in ev.signers),
            issued_at=format_time(st.issued_at), subject_sha256=st.subjects[0][1],
        )

    @classmethod
    def failed(cls, ref: str, raw: bytes, error: EvidenceInvalid) -> VerificationResult:
        return cls(
            ref=ref, envelope_sha256=hashlib.sha256(raw).hexdigest(), verified=False,
            failed_step=error.step, reason=error.message,
        )


def verify_envelope(
    raw: bytes, trust: TrustPolicy, *, subject_sha256: str | None, now: datetime,
    ref: str = "envelope",
) -> VerifiedEvidence:
    """Verify one DSSE envelope against ``trust`` and bind it to the candidate's weights.

    Steps, in order, each with its own exception (all subclasses of ``EvidenceInvalid``):

    1. parse the envelope (JSON, fields, base64)                  EnvelopeFormatError
    2. payloadType is in-toto JSON                                  PayloadTypeError
    3. signatures: which trusted keys signed the PAE bytes          SignatureError
    4. parse the Statement from the verified bytes only             StatementFormatError
    5. drop revoked keys                                            KeyRevokedError
    6. drop keys outside their validity window at the claimed issue
       time, then those not valid at ``now`` (backdating cannot revive
       an expired key; no trusted timestamp vouches for issue times)  KeyNotValidError
    7. drop keys not allowed to sign this predicate kind            KeyNotAuthorizedError
    8. distinct remaining keys of distinct principals meet the
       kind's threshold                                             ThresholdError
    9. the predicate matches its kind's JSON Schema                 PredicateSchemaError
    10. a subject is the candidate's weights root digest            SubjectMismatchError
    11. issued no later than now + skew, no older than max age      FutureEvidenceError,
                                                                    StaleEvidenceError
        (a kind the trust policy gives no max age cannot be judged) VerificationUnavailable

    Key ids in the envelope are hints for which key to try first, never trusted. Passing
    ``subject_sha256=None`` skips step 10: the statement is then bound to no weights at all,
    which only an interactive ``slmgate evidence verify`` without ``--subject`` does.
    """
    envelope = Envelope.from_json(raw)
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise PayloadTypeError(
            f"payloadType {envelope.payload_type!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}"
        )
    signed = envelope.keys_that_signed_among(trust._key_index)
    if not signed:
        raise SignatureError(
            f"none of {len(envelope.signatures)} signature(s) verifies under a trusted key"
        )
    statement = Statement.parse(envelope.payload)
    signers = [trust.identity_of(k) for k in signed]
    kind, issued_at = statement.kind, statement.issued_at
    # Steps 5-7 drop signers in turn; the one that drops the last signer is the refusal. Those
    # left after all three are the signers that pass each, so they are found in one pass and
    # the steps are taken one by one only to word a refusal.
    allowed = [s for s in signers
               if s.key.keyid not in trust.revoked_keyids and s.valid_at(issued_at)
               and s.valid_at(now) and kind in s.may_sign]
    if not allowed:
        _refuse_signers(signers, statement, now, trust)
    needed = trust.thresholds.get(kind, 1)
    principals = {s.principal for s in allowed}
    if len(principals) < needed:
        held = f" held by {len(principals)} principal(s)" if len(principals) < len(allowed) else ""
        raise ThresholdError(
            f"{kind} needs {needed} distinct authorised key(s) of distinct principals, "
            f"got {len(allowed)} key(s){held}: {_names(allowed)}"
        )
    check_predicate(statement.kind, statement.predicate)
    if subject_sha256 is not None and not statement.is_about(subject_sha256):
        got = ", ".join(d[:16] for _, d in statement.subjects)
        raise SubjectMismatchError(
            f"statement is about sha256 {got}…, not the candidate {subject_sha256[:16]}…"
        )
    check_freshness(statement, trust, now)
    return VerifiedEvidence(ref, statement, tuple(allowed), hashlib.sha256(raw).hexdigest())


def _refuse_signers(signers: list[TrustedIdentity], statement: Statement, now: datetime,
                    trust: TrustPolicy) -> NoReturn:
    """Steps 5-7 of ``verify_envelope``, one by one, when together they leave no signer: raise
    the error of the step that dropped the last one."""
    live = [s for s in signers if s.key.keyid not in trust.revoked_keyids]
    if not live:
        raise KeyRevokedError(f"signed only by revoked key(s): {_names(signers)}")
    valid = [s for s in live if s.valid_at(statement.issued_at)]
    if not valid:
        raise KeyNotValidError(
            f"key(s) {_names(live)} not valid at {format_time(statement.issued_at)}"
        )
    # The issue time is the signer's claim; without a trusted timestamp the key must also be
    # valid now, or an expired key could sign anything it backdates into its old window.
    valid = [s for s in valid if s.valid_at(now)]
    if not valid:
        raise KeyNotValidError(
            f"key(s) {_names(live)} not valid at verification time {format_time(now)} "
            f"(the claimed issue time {format_time(statement.issued_at)} is not trusted to "
            "extend a key's validity)"
        )
    raise KeyNotAuthorizedError(f"{_names(valid)} may not sign {statement.kind}")


def check_freshness(statement: Statement, trust: TrustPolicy, now: datetime) -> None:
    """Step 11 of ``verify_envelope``, the only step that depends on the evaluation time: issued
    no later than ``now`` plus the allowed skew, and no older than the kind's maximum age."""
    if statement.issued_at > now + trust.max_clock_skew:
        raise FutureEvidenceError(
            f"issued {format_time(statement.issued_at)}, after the evaluation time {format_time(now)}"
        )
    max_age = trust.max_age.get(statement.kind)
    if max_age is None:
        raise VerificationUnavailable(
            f"the trust policy sets no max_age_days for {statement.kind}",
            advice="every predicate kind needs a maximum age",
        )
    if now - statement.issued_at > max_age:
        days = (now - statement.issued_at).total_seconds() / 86400
        raise StaleEvidenceError(
            f"{statement.kind} is {days:.1f} days old; the maximum is {max_age.days} days"
        )


def _names(identities: list[TrustedIdentity]) -> str:
    return ", ".join(sorted(i.name for i in identities))
