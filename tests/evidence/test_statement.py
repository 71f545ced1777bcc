"""Statement.parse: one refused payload per parse rule, each a StatementFormatError (never a
TypeError or KeyError), and the timestamps, digests and names it accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmgate.evidence import format_time, make_statement
from slmgate.evidence._statement import (
    PREDICATE_TYPES,
    STATEMENT_TYPE,
    Statement,
    canonical_json,
    canonical_or_strict_json,
    parse_time,
    statement_json,
    strict_json,
)
from slmgate.evidence.errors import EnvelopeFormatError, StatementFormatError

DIGEST = "ab" * 32
WHEN = "2026-11-20T12:00:00Z"


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "support-triage", "digest": {"sha256": DIGEST}}],
        "predicateType": PREDICATE_TYPES["serving-config"],
        "predicate": {"captured_at": WHEN},
    }
    doc.update(changes)
    return doc


def _raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _without(key: str) -> bytes:
    return _raw({k: v for k, v in _doc().items() if k != key})


def test_a_well_formed_statement_is_parsed() -> None:
    raw = _raw(_doc())
    st = Statement.parse(raw)
    assert st.subjects == (("support-triage", DIGEST),)
    assert st.kind == "serving-config"
    assert st.predicate_type == PREDICATE_TYPES["serving-config"]
    assert st.predicate == {"captured_at": WHEN}
    assert st.issued_at == datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert st.raw is raw


REFUSED: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{not json", "not JSON"),
    "not UTF-8": (b'{"_type": "\xff"}', "not JSON"),
    "a repeated key": (b'{"_type": "a", "_type": "b"}', "appears twice"),
    "NaN": (b'{"_type": NaN}', "not a JSON number"),
    "Infinity": (b'{"x": Infinity}', "not a JSON number"),
    "an array, not an object": (_raw([_doc()]), "_type 'list'"),
    "no _type": (_without("_type"), "_type None"),
    "another _type": (_raw(_doc(_type="https://in-toto.io/Statement/v0.1")), "not an in-toto Statement v1"),
    "no subject": (_without("subject"), "subject must be a non-empty list"),
    "an empty subject": (_raw(_doc(subject=[])), "subject must be a non-empty list"),
    "a subject that is an object": (_raw(_doc(subject={"digest": {"sha256": DIGEST}})),
                                    "subject must be a non-empty list"),
    "a subject entry that is a string": (_raw(_doc(subject=["support-triage"])),
                                         r"subject\[0\] lacks a sha256 digest"),
    "a subject without digest": (_raw(_doc(subject=[{"name": "m"}])), r"subject\[0\] lacks a sha256"),
    "a digest that is a string": (_raw(_doc(subject=[{"digest": DIGEST}])), r"subject\[0\] lacks a sha256"),
    "a digest without sha256": (_raw(_doc(subject=[{"digest": {"sha512": DIGEST}}])),
                                r"subject\[0\] lacks a sha256"),
    "a sha256 that is a number": (_raw(_doc(subject=[{"digest": {"sha256": 12}}])),
                                  r"subject\[0\] lacks a sha256"),
    "a second subject without digest": (
        _raw(_doc(subject=[{"digest": {"sha256": DIGEST}}, {"name": "x"}])), r"subject\[1\] lacks"),
    "a non-hex sha256": (_raw(_doc(subject=[{"digest": {"sha256": "g" * 64}}])), "not 64 hex digits"),
    "a short sha256": (_raw(_doc(subject=[{"digest": {"sha256": "a" * 63}}])), "not 64 hex digits"),
    "a long sha256": (_raw(_doc(subject=[{"digest": {"sha256": "a" * 65}}])), "not 64 hex digits"),
    "a subject name that is a number": (_raw(_doc(subject=[{"name": 7, "digest": {"sha256": DIGEST}}])),
                                        r"subject\[0\]\.name must be a string"),
    "an unknown predicateType": (_raw(_doc(predicateType="https://example.com/x")), "unknown predicateType"),
    "no predicateType": (_without("predicateType"),
                         "unknown predicateType None"),
    "a predicateType that is a list": (_raw(_doc(predicateType=[PREDICATE_TYPES["serving-config"]])),
                                       "unknown predicateType"),
    "a predicateType that is an object": (_raw(_doc(predicateType={"uri": "x"})), "unknown predicateType"),
    "a predicate that is a list": (_raw(_doc(predicate=[{"captured_at": WHEN}])),
                                   "predicate must be an object"),
    "no predicate": (_without("predicate"), "predicate must be an object"),
    "no timestamp": (_raw(_doc(predicate={})),
                     "predicate.captured_at: expected an RFC 3339 timestamp, got NoneType"),
    "a timestamp that is a number": (_raw(_doc(predicate={"captured_at": 1700000000})),
                                     "expected an RFC 3339 timestamp, got int"),
    "an unreadable timestamp": (_raw(_doc(predicate={"captured_at": "yesterday"})),
                                "expected an RFC 3339 timestamp, got 'yesterday'"),
    "a timestamp without offset": (_raw(_doc(predicate={"captured_at": "2026-11-20T12:00:00"})),
                                   "has no UTC offset"),
    "a date without time": (_raw(_doc(predicate={"captured_at": "2026-11-20"})), "has no UTC offset"),
    "a timestamp past the calendar's end": (
        _raw(_doc(predicate={"captured_at": "9999-12-31T23:59:59-01:00"})), "RFC 3339 timestamp"),
    "the timestamp of another kind": (
        _raw(_doc(predicate={"created_at": WHEN})), "predicate.captured_at"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_each_parse_rule_refuses_with_a_statement_format_error(case: str) -> None:
    raw, message = REFUSED[case]
    with pytest.raises(StatementFormatError, match=message) as caught:
        Statement.parse(raw)
    assert caught.value.step == "statement"


def test_upper_case_digests_are_read_in_lower_case() -> None:
    st = Statement.parse(_raw(_doc(subject=[{"digest": {"sha256": DIGEST.upper()}}])))
    assert st.subjects == (("", DIGEST),)  # a subject without a name is named ""
    assert st.is_about(DIGEST.upper()) and st.is_about(DIGEST)


def test_a_statement_is_about_any_of_its_subjects_and_nothing_else() -> None:
    other = "cd" * 32
    st = Statement.parse(_raw(_doc(subject=[{"digest": {"sha256": DIGEST}}, {"digest": {"sha256": other}}])))
    assert st.is_about(DIGEST) and st.is_about(other)
    assert not st.is_about("ef" * 32)


def test_each_kind_is_issued_at_its_own_field() -> None:
    st = Statement.parse(_raw(_doc(predicateType=PREDICATE_TYPES["eval-result"],
                                   predicate={"finished_at": WHEN, "captured_at": "garbage"})))
    assert st.kind == "eval-result" and format_time(st.issued_at) == WHEN


def test_an_offset_is_converted_to_utc() -> None:
    st = Statement.parse(_raw(_doc(predicate={"captured_at": "2026-11-20T14:00:00+02:00"})))
    assert st.issued_at == datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert st.issued_at.tzinfo == UTC


def test_parse_time_says_what_it_read() -> None:
    assert parse_time("2026-11-20T12:00:00Z", what="x") == datetime(2026, 11, 20, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"^when: timestamp '2026-11-20T12:00:00' has no UTC offset$"):
        parse_time("2026-11-20T12:00:00", what="when")


def test_format_time_writes_utc_with_z_to_the_second() -> None:
    moment = datetime(2026, 11, 20, 14, 0, 7, 999, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-11-20T12:00:07Z"


def test_make_statement_is_canonical_and_parses_back() -> None:
    raw = make_statement("m", DIGEST, "serving-config", {"captured_at": WHEN})
    assert raw == canonical_json(json.loads(raw))
    assert b" " not in raw and raw.index(b'"_type"') < raw.index(b'"predicate"')
    assert Statement.parse(raw).subjects == (("m", DIGEST),)
    with pytest.raises(ValueError, match="unknown predicate kind 'evals'"):
        make_statement("m", DIGEST, "evals", {})


def test_strict_json_raises_the_callers_error() -> None:
    with pytest.raises(EnvelopeFormatError, match=r"^the envelope is not JSON as slmgate accepts it"):
        strict_json(b'{"a": 1, "a": 1}', EnvelopeFormatError, "the envelope")
    assert strict_json(b'{"a": [1, 2.5, null]}', EnvelopeFormatError, "x") == {"a": [1, 2.5, None]}


def test_json_nested_past_the_parser_stack_is_refused_by_name() -> None:
    """A signed payload of a million brackets must be a clear refusal, not a RecursionError."""
    deep = b"[" * 1_000_000 + b"]" * 1_000_000
    with pytest.raises(StatementFormatError, match=r"^payload is not JSON .*\(nested too deeply\)"):
        Statement.parse(deep)


# --------------------------------------------- the canonical fast path reads what strict_json reads

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


def _strict(raw: bytes) -> Any:
    try:
        return ("ok", strict_json(raw, StatementFormatError, "payload"))
    except StatementFormatError as exc:
        return ("refused", exc.message)


def _fast(raw: bytes) -> Any:
    try:
        return ("ok", statement_json(raw))
    except StatementFormatError as exc:
        return ("refused", exc.message)


@settings(max_examples=300, deadline=None)
@given(doc=_VALUES, spelling=st.sampled_from(["canonical", "orjson", "spaced", "unsorted", "ascii",
                                              "indented", "orjson-indented", "indented-unsorted"]))
def test_statement_json_reads_every_spelling_as_strict_json_does(doc: Any, spelling: str) -> None:
    raw = {"canonical": lambda: canonical_json(doc),
           "orjson": lambda: orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
           if _fits_orjson(doc) else canonical_json(doc),
           "spaced": lambda: json.dumps(doc, sort_keys=True).encode(),
           "unsorted": lambda: json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(),
           "ascii": lambda: json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
           # the form envelopes are written in (Envelope.to_json): indented by two, final newline
           "indented": lambda: json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n",
           "orjson-indented": lambda: orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
           + b"\n" if _fits_orjson(doc) else canonical_json(doc),
           "indented-unsorted": lambda: json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n",
           }[spelling]()
    assert _fast(raw) == _strict(raw)


def _fits_orjson(doc: Any) -> bool:
    try:
        orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return False
    return True


@pytest.mark.parametrize("raw", [
    b'{"a":1,"a":2}', b'{"a":{"b":1,"b":1}}', b'[{"x":0,"x":0}]',  # repeated keys, canonical-looking
    b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
    b'{"a":"\\ud800"}', b'{"a":123456789012345678901234567890}', b'{"a":-0}', b'{"a":1E5}',
    b'{"b":1,"a":2}', b' {"a":1}', b'{"a":1} ', b'\xff', b'{"a":"\xc3"}', b"[" * 300 + b"]" * 300,
    b"[" * 2000 + b"]" * 2000, b"", b"1", b'"x"', b"null",
    b'{\n  "a": 1,\n  "a": 2\n}\n', b'{\n  "a": NaN\n}\n', b'{\n  "b": 1,\n  "a": 2\n}\n',  # indented
    b'{\n  "a": 1\n}', b'{\n  "a": 1\n}\n\n', b'{"a":1}\n', b"\n", b'{\n  "a": "\\ud800"\n}\n',
])
def test_statement_json_agrees_with_strict_json_on_hostile_spellings(raw: bytes) -> None:
    assert _fast(raw) == _strict(raw)


def test_a_canonical_statement_is_not_read_by_the_strict_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken (so its check is the one that must hold): a canonical payload
    never reaches strict_json, any other spelling always does."""
    calls: list[bytes] = []
    monkeypatch.setattr("slmgate.evidence._statement.strict_json",
                        lambda raw, error, what: calls.append(raw) or strict_json(raw, error, what))
    canonical = orjson.dumps(_doc(), option=orjson.OPT_SORT_KEYS)
    assert Statement.parse(canonical).predicate == {"captured_at": WHEN}
    assert calls == []
    spaced = json.dumps(_doc(), indent=1).encode()
    assert Statement.parse(spaced).predicate == {"captured_at": WHEN}
    assert calls == [spaced]


def test_the_indented_canonical_form_is_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``orjson``'s sorted form indented by two with a final newline (how envelopes are
    written) is read at once; without the final newline, or indented otherwise, it is not."""
    calls: list[bytes] = []
    monkeypatch.setattr("slmgate.evidence._statement.strict_json",
                        lambda raw, error, what: calls.append(raw) or strict_json(raw, error, what))
    indented = orjson.dumps(_doc(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    assert canonical_or_strict_json(indented, StatementFormatError, "payload") == _doc()
    assert calls == []
    for other in (indented[:-1], json.dumps(_doc(), indent=4, sort_keys=True).encode() + b"\n"):
        assert canonical_or_strict_json(other, StatementFormatError, "payload") == _doc()
    assert calls == [indented[:-1], json.dumps(_doc(), indent=4, sort_keys=True).encode() + b"\n"]
