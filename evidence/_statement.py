"""in-toto Statement v1: the layer that binds a predicate to the weights it speaks about.

Statements are written canonically (sorted keys, compact separators) and parsed only from
bytes whose signature was verified first. JSON is read strictly: a repeated key or a
non-finite number (``NaN``, ``Infinity``) is refused, so no two parsers can read one signed
document two ways.

Reading a Statement strictly with the standard library costs about twice a plain parse (its
repeated-key check needs every object as a list of pairs). A Statement in canonical form
(``orjson``'s sorted, compact serialisation of what ``orjson`` parsed is the payload, byte for
byte) cannot repeat a key nor hold ``NaN``, and reads the same in every conforming parser, so
it is taken from ``orjson`` at once; anything else (another key order, whitespace, escapes,
numbers spelt differently, anything ``orjson`` refuses) goes through the strict standard-library
parser, which decides. Either way the same documents are accepted, as the same values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson

from .errors import EvidenceInvalid, StatementFormatError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

# Predicate kinds slmgate understands: short name used in policies -> predicateType URI.
PREDICATE_TYPES: dict[str, str] = {
    "weights-manifest": "https://model_signing/signature/v1.0",
    "eval-result": "https://slmgate.dev/eval-result/v0.1",
    "serving-config": "https://slmgate.dev/serving-config/v0.1",
    "rollback-plan": "https://slmgate.dev/rollback-plan/v0.1",
    "approval": "https://slmgate.dev/approval/v0.1",
    "decision-record": "https://slmgate.dev/decision-record/v0.1",
    "data-card": "https://slmgate.dev/data-card/v0.2",
    "training-run": "https://slmgate.dev/training-run/v0.1",
    "model-card": "https://slmgate.dev/model-card/v0.1",
    "deployment-attestation": "https://slmgate.dev/deployment-attestation/v0.1",
    "ops-metrics": "https://slmgate.dev/ops-metrics/v0.1",
    "packet-seal": "https://slmgate.dev/packet-seal/v0.1",
}
PREDICATE_KINDS: dict[str, str] = {uri: kind for kind, uri in PREDICATE_TYPES.items()}

# Where each kind of predicate says when it was made (the time used for key validity windows
# and freshness). A predicate without it cannot be judged fresh, so it is refused.
ISSUED_AT_FIELD: dict[str, str] = {
    "weights-manifest": "created_at",
    "eval-result": "finished_at",
    "serving-config": "captured_at",
    "rollback-plan": "created_at",
    "approval": "approved_at",
    "decision-record": "decided_at",
    "data-card": "created_at",
    "training-run": "finished_at",
    "model-card": "created_at",
    "deployment-attestation": "attested_at",
    "ops-metrics": "reported_at",
    "packet-seal": "sealed_at",
}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return doc


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def strict_json(raw: bytes, error: type[EvidenceInvalid], what: str) -> Any:
    """Parse UTF-8 JSON, refusing repeated keys and NaN/Infinity with ``error``."""
    try:
        return _STRICT_DECODER.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{what} is not JSON as slmgate accepts it ({exc})") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack
        raise error(f"{what} is not JSON as slmgate accepts it (nested too deeply)") from exc


_SORTED = orjson.OPT_SORT_KEYS
_SORTED_INDENTED = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


def canonical_or_strict_json(raw: bytes, error: type[EvidenceInvalid], what: str) -> Any:
    """``strict_json``, with bytes in a canonical form taken from ``orjson`` at once.

    Two forms are canonical: ``orjson``'s sorted compact serialisation of what it parsed (how
    Statements are written), and its sorted serialisation indented by two spaces plus a final
    newline (how ``Envelope.to_json`` writes envelopes; the same bytes as ``json.dumps(indent=2,
    sort_keys=True)``). Bytes equal to either cannot repeat a key nor hold ``NaN``, so every
    conforming parser reads them as the same value; anything else goes to ``strict_json``."""
    try:
        doc = orjson.loads(raw)
        if raw[-1:] == b"\n":
            if orjson.dumps(doc, option=_SORTED_INDENTED) == raw[:-1]:
                return doc
        elif orjson.dumps(doc, option=_SORTED) == raw:
            return doc
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass  # a lone surrogate, an integer beyond 64 bits, deep nesting: the strict parser decides
    return strict_json(raw, error, what)


def statement_json(raw: bytes) -> Any:
    """Parse verified Statement bytes: canonical bytes through ``orjson`` (whose canonical form
    proves there is no repeated key), every other spelling through ``strict_json``."""
    return canonical_or_strict_json(raw, StatementFormatError, "payload")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, second precision: the one time format slmgate writes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, *, what: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset (``Z`` accepted)."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected an RFC 3339 timestamp, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{what}: expected an RFC 3339 timestamp, got {text!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{what}: timestamp {text!r} has no UTC offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-01:00 is past the calendar's end in UTC
        raise ValueError(f"{what}: expected an RFC 3339 timestamp, got {text!r} (out of range)") from exc


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_statement(
    subject_name: str, subject_sha256: str, kind: str, predicate: dict[str, Any]
) -> bytes:
    """The canonical bytes of a Statement about weights with root digest ``subject_sha256``."""
    if kind not in PREDICATE_TYPES:
        raise ValueError(f"unknown predicate kind {kind!r}")
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": subject_name, "digest": {"sha256": subject_sha256}}],
            "predicateType": PREDICATE_TYPES[kind],
            "predicate": predicate,
        }
    )


@dataclass(frozen=True)
class Statement:
    """A parsed Statement; ``raw`` keeps the verified bytes it was parsed from."""

    subjects: tuple[tuple[str, str], ...]  # (name, sha256 hex)
    predicate_type: str
    kind: str
    predicate: dict[str, Any]
    issued_at: datetime
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Statement:
        """Parse verified bytes; refuse anything that is not a Statement v1 slmgate accepts."""
        doc = statement_json(raw)
        if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
            got = doc.get("_type") if isinstance(doc, dict) else type(doc).__name__
            raise StatementFormatError(f"payload is not an in-toto Statement v1 (_type {got!r})")
        subjects = doc.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise StatementFormatError("statement: subject must be a non-empty list")
        parsed: list[tuple[str, str]] = []
        for i, s in enumerate(subjects):
            digest = s.get("digest") if isinstance(s, dict) else None
            if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str):
                raise StatementFormatError(f"statement: subject[{i}] lacks a sha256 digest")
            sha256 = digest["sha256"].lower()
            if not _SHA256_HEX.fullmatch(sha256):
                raise StatementFormatError(
                    f"statement: subject[{i}].digest.sha256 is not 64 hex digits")
            name = s.get("name", "")
            if not isinstance(name, str):
                raise StatementFormatError(f"statement: subject[{i}].name must be a string")
            parsed.append((name, sha256))
        ptype = doc.get("predicateType")
        if not isinstance(ptype, str) or ptype not in PREDICATE_KINDS:  # a list is unhashable
            raise StatementFormatError(f"statement: unknown predicateType {ptype!r}")
        predicate = doc.get("predicate")
        if not isinstance(predicate, dict):
            raise StatementFormatError("statement: predicate must be an object")
        kind = PREDICATE_KINDS[ptype]
        field = ISSUED_AT_FIELD[kind]
        try:
            issued_at = parse_time(predicate.get(field), what=f"predicate.{field}")
        except ValueError as exc:
            raise StatementFormatError(f"statement: {exc}") from exc
        return cls(tuple(parsed), ptype, kind, predicate, issued_at, raw)

    def is_about(self, sha256: str) -> bool:
        sha256 = sha256.lower()
        return any(digest == sha256 for _, digest in self.subjects)
