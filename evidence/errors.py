"""slmgate's exception tree, shared by every package; the CLI maps it to exit codes in one place.

    SlmgateError                      base: a message plus advice, ``diagnostics()`` presents both
    ├── InputError                    bad usage or invalid input (exit 2): names file, field, expectation
    ├── EvidenceInvalid               a piece of evidence was refused (exit 4, never an approval)
    │   ├── EnvelopeFormatError       not a DSSE envelope (JSON, fields, base64, signature count)
    │   ├── PayloadTypeError          payloadType is not the in-toto JSON type
    │   ├── SignatureError            no signature verifies under a trusted key
    │   ├── StatementFormatError      the verified payload is not an in-toto Statement v1 we accept
    │   ├── KeyRevokedError           the only valid signatures come from revoked keys
    │   ├── KeyNotValidError          the signing key was outside its validity window at signing time
    │   ├── KeyNotAuthorizedError     the key may not sign this predicate type
    │   ├── ThresholdError            fewer distinct authorised keys (or people) than the policy asks
    │   ├── PredicateSchemaError      the predicate does not match its kind's JSON Schema
    │   ├── SubjectMismatchError      the statement is about other weights than the candidate's
    │   ├── ManifestMismatchError     a weights manifest disagrees with its subject or the files
    │   ├── StaleEvidenceError        older than the trust policy's maximum age
    │   ├── FutureEvidenceError       dated after the evaluation time (beyond the allowed skew)
    │   └── VerificationUnavailable   verification could not run at all (missing key file, ...)
    └── PolicyError                   the policy could not be evaluated or gave no usable result (exit 4)

``VerificationUnavailable`` is a subclass of ``EvidenceInvalid`` (the securesystemslib split): a
caller that only asks "did it verify?" catches ``EvidenceInvalid`` and so fails closed on both.
"""

from __future__ import annotations


class SlmgateError(Exception):
    """Base of every error slmgate raises on purpose."""

    def __init__(self, message: str, *, advice: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.advice = advice

    def diagnostics(self) -> str:
        """The message and, when there is one, what to do about it."""
        return f"{self.message}\n  hint: {self.advice}" if self.advice else self.message


class InputError(SlmgateError):
    """Bad usage or an invalid input document; nothing was written."""

    def __init__(
        self, message: str, *, file: str | None = None, field: str | None = None, advice: str = ""
    ) -> None:
        where = ""
        if file:
            where = f"{file}: "
            if field:
                where = f"{file}: {field}: "
        elif field:
            where = f"{field}: "
        super().__init__(where + message, advice=advice)
        self.detail = message
        self.file = file
        self.field = field


class EvidenceInvalid(SlmgateError):
    """A piece of evidence was refused; ``step`` names the verification step that failed."""

    step = "evidence"


class EnvelopeFormatError(EvidenceInvalid):
    step = "parse"


class PayloadTypeError(EvidenceInvalid):
    step = "payload-type"


class SignatureError(EvidenceInvalid):
    step = "signature"


class StatementFormatError(EvidenceInvalid):
    step = "statement"


class KeyRevokedError(EvidenceInvalid):
    step = "key-revoked"


class KeyNotValidError(EvidenceInvalid):
    step = "key-validity"


class KeyNotAuthorizedError(EvidenceInvalid):
    step = "key-authorization"


class ThresholdError(EvidenceInvalid):
    step = "threshold"


class PredicateSchemaError(EvidenceInvalid):
    """The signed predicate does not match the published JSON Schema of its kind; ``field`` is
    the dotted path of the first offending field ("(predicate)" for the predicate itself)."""

    step = "predicate"

    def __init__(self, message: str, *, field: str = "(predicate)", advice: str = "") -> None:
        super().__init__(message, advice=advice)
        self.field = field


class SubjectMismatchError(EvidenceInvalid):
    step = "subject"


class ManifestMismatchError(EvidenceInvalid):
    step = "manifest"


class StaleEvidenceError(EvidenceInvalid):
    step = "freshness"


class FutureEvidenceError(EvidenceInvalid):
    step = "freshness"


class VerificationUnavailable(EvidenceInvalid):
    """Verification could not run; still a refusal for anyone asking pass/fail."""

    step = "unavailable"


class PolicyError(SlmgateError):
    """The policy bundle could not be compiled or evaluated, or its result was unusable."""
