"""Predicate JSON Schemas: one per kind, what the producers emit conforms, errors name the field,
and the accept-path check (jsonschema-rs) agrees with ``jsonschema``, the reference, on generated
documents."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request, sign_decision_record
from slmgate.evidence import (
    PREDICATE_TYPES,
    Envelope,
    Statement,
    check_predicate,
    format_time,
    hash_model_dir,
    predicate_schema,
)
from slmgate.evidence._predicates import _validator
from slmgate.evidence._statement import ISSUED_AT_FIELD
from slmgate.evidence.errors import PredicateSchemaError
from tests.conftest import (
    MODEL,
    NOW,
    World,
    data_card_predicate,
    eval_predicate,
    serving_predicate,
    training_run_predicate,
)

SCHEMA_DIR = resources.files("slmgate.evidence") / "schemas"
HEX = "ab" * 32


def examples(world: World) -> dict[str, dict[str, Any]]:
    """One predicate per kind, as the producers in this repository write them."""
    doc = world.request_doc("req-ex", ["model_family_change"], [])
    return {
        "weights-manifest": hash_model_dir(world.candidate, model_name=MODEL).to_predicate(format_time(NOW)),
        "eval-result": eval_predicate(world.baseline_sha),
        "serving-config": serving_predicate(),
        "rollback-plan": json.loads(Statement.parse(_payload(world.rollback_plan())).raw)["predicate"],
        "approval": json.loads(_payload(world.approval("ml-lead", doc)))["predicate"],
        "data-card": data_card_predicate("tickets_scrubbed", HEX),
        "training-run": training_run_predicate([("tickets_scrubbed", HEX)], base=("base", HEX)),
        "model-card": {"model": {"name": MODEL, "version": "1.1.0"},
                       "card": {"uri": "cards/support-triage.md", "digest": {"sha256": HEX}},
                       "created_at": format_time(NOW)},
        "deployment-attestation": {
            "attested_at": format_time(NOW), "region": "eu-west", "host": "inference-1",
            "model": {"name": MODEL, "weights_digest": f"sha256:{HEX}", "files": 2},
            "decision": {"id": "dec-" + "0" * 20, "outcome": "approve", "bundle_digest": f"sha256:{HEX}"},
            "purpose": "ticket_routing", "data_classes": ["ticket_text"]},
        "ops-metrics": {
            "reported_at": format_time(NOW), "program": "support-ticket-triage",
            "period": {"week": "2026-W47", "start": "2026-11-16", "end": "2026-11-22"},
            "model": {"name": MODEL, "weights_digest": f"sha256:{HEX}"}, "tasks": 400,
            "automated_share": 0.7, "escalation_share": 0.2, "defects_per_1000": 50.0,
            "cost": {"device": "cpu-inference-host", "device_hours": 168, "price_per_device_hour": 0.12,
                     "currency": "EUR", "total": 20.16, "successful_tasks": 280,
                     "per_successful_task": 0.072},
            "latency_p95_ms": 4.2, "error_rate": 0.005,
            "business_metrics": {"handle_time": 1.1, "cost_per_ticket": 0.072}},
    }


def _payload(raw: bytes) -> bytes:
    import base64

    return base64.b64decode(json.loads(raw)["payload"])


def test_every_kind_has_a_valid_schema_and_every_schema_a_kind() -> None:
    files = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.iterdir()
             if p.name.endswith(".schema.json")}
    assert files == set(PREDICATE_TYPES) == set(ISSUED_AT_FIELD)
    for kind in PREDICATE_TYPES:
        schema = predicate_schema(kind)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert ISSUED_AT_FIELD[kind] in schema["required"], kind  # freshness needs it


def test_the_weights_manifest_schema_is_the_model_signing_v1_predicate() -> None:
    schema = predicate_schema("weights-manifest")
    assert PREDICATE_TYPES["weights-manifest"] == "https://model_signing/signature/v1.0"
    assert {"serialization", "resources", "created_at"} <= set(schema["required"])
    serialization = schema["properties"]["serialization"]
    assert set(serialization["properties"]["method"]["enum"]) == {"files", "shards"}


@pytest.mark.parametrize("kind", sorted(set(PREDICATE_TYPES) - {"decision-record", "packet-seal"}))
def test_what_the_producers_emit_conforms(world: World, kind: str) -> None:
    check_predicate(kind, examples(world)[kind])


def test_imported_eval_results_conform() -> None:
    """lm-evaluation-harness results and model-card model-index: no baseline, no digests."""
    from slmgate.runtime import import_lm_eval, import_model_index

    assets = Path(__file__).resolve().parents[1] / "runtime" / "assets"
    imported = import_lm_eval(assets / "lm-eval-results.json", layers=["gsm8k=stress"])
    assert imported["baseline"] is None
    check_predicate("eval-result", imported)
    check_predicate("eval-result", import_model_index(assets / "model-card-README.md",
                                                      evaluated_at="2026-11-01T00:00:00Z"))


def test_a_signed_decision_record_conforms(world: World, tmp_path: Path) -> None:
    bundle = load_bundle(world.policies)
    req = load_request(world.request(tmp_path / "req", world.standard_evidence()))
    decision = evaluate_promotion(req, bundle, CompiledPolicy(bundle), now=NOW).decision
    record = sign_decision_record(decision, world.key("slmgate-gate"))
    check_predicate("decision-record", Statement.parse(_payload(record)).predicate)


def test_a_sharded_weights_manifest_needs_its_shard_size(world: World) -> None:
    pred = examples(world)["weights-manifest"]
    pred["serialization"]["method"] = "shards"
    pred["serialization"].pop("shard_size", None)
    with pytest.raises(PredicateSchemaError) as caught:
        check_predicate("weights-manifest", pred)
    assert caught.value.field == "serialization.shard_size"
    pred["serialization"]["shard_size"] = 1 << 30
    check_predicate("weights-manifest", pred)


@pytest.mark.parametrize("kind, edit, field", [
    ("eval-result", lambda p: p.pop("finished_at"), "finished_at"),
    ("eval-result", lambda p: p["layers"]["stress"]["metrics"]["accuracy"].update(candidate=True),
     "layers.stress.metrics.accuracy.candidate"),
    ("eval-result", lambda p: p.update(layers={}), "layers"),
    ("eval-result", lambda p: p["baseline"]["digest"].update(sha256="XYZ"), "baseline.digest.sha256"),
    ("eval-result", lambda p: p["harness"].pop("version"), "harness.version"),
    ("weights-manifest", lambda p: p.update(resources=[]), "resources"),
    ("weights-manifest", lambda p: p["resources"][0].pop("digest"), "resources.0.digest"),
    ("serving-config", lambda p: p.update(batch_size=0), "batch_size"),
    ("serving-config", lambda p: p["latency_ms"].update(p95="fast"), "latency_ms.p95"),
    ("approval", lambda p: p.update(decision="maybe"), "decision"),
    ("approval", lambda p: p.update(request_digest="sha256:short"), "request_digest"),
    ("rollback-plan", lambda p: p.update(last_drill="last week"), "last_drill"),
    ("data-card", lambda p: p["records"].update(oldest="last spring"), "records.oldest"),
    ("data-card", lambda p: p["provenance"].update(category="scraped"), "provenance.category"),
    ("data-card", lambda p: p.update(lawful_basis="because"), "lawful_basis"),
    ("data-card", lambda p: p.pop("access_role"), "access_role"),
    ("data-card", lambda p: p.update(provenance={"category": "derivative", "origin": {"name": "x"}}),
     "provenance.origin.digest"),
    ("training-run", lambda p: p.update(resolved_dependencies=[]), "resolved_dependencies"),
    ("training-run", lambda p: p["resolved_dependencies"][0].update(role="other"),
     "resolved_dependencies.0.role"),
    ("training-run", lambda p: p["builder"].pop("id"), "builder.id"),
    ("model-card", lambda p: p.update(card="cards/x.md"), "card"),
    ("approval", lambda p: p.update(approved_at="yesterday"), "approved_at"),
])
def test_a_malformed_predicate_names_its_field(world: World, kind: str, edit, field: str) -> None:  # type: ignore[no-untyped-def]
    pred = copy.deepcopy(examples(world)[kind])
    edit(pred)
    with pytest.raises(PredicateSchemaError) as caught:
        check_predicate(kind, pred)
    assert caught.value.field == field
    assert caught.value.step == "predicate"
    assert f"{kind} predicate: {field}:" in caught.value.message


def test_a_predicate_is_refused_when_the_validator_names_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Contradictory:
        def is_valid(self, instance: Any) -> bool:
            return False

        def iter_errors(self, instance: Any) -> list[Any]:
            return []

    monkeypatch.setattr("slmgate.evidence._predicates._validator", lambda kind: Contradictory())
    with pytest.raises(PredicateSchemaError, match="names no error"):
        check_predicate("model-card", {"card": {"uri": "x", "digest": {"sha256": HEX}},
                                       "created_at": "2026-11-20T12:00:00Z"})


def test_a_value_the_validator_cannot_take_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unconvertible:
        def is_valid(self, instance: Any) -> bool:
            raise ValueError("unsupported type")

    monkeypatch.setattr("slmgate.evidence._predicates._validator", lambda kind: Unconvertible())
    with pytest.raises(PredicateSchemaError, match="cannot be checked"):
        check_predicate("model-card", {})


def test_a_trailing_newline_does_not_match_an_anchored_pattern(world: World) -> None:
    """ECMA-262 ``$`` (what JSON Schema specifies) is the end of the string; Python's ``re``
    also matches before a final newline, which the checker replaced here let through."""
    pred = copy.deepcopy(examples(world)["approval"])
    pred["request_digest"] = "sha256:" + HEX + "\n"
    with pytest.raises(PredicateSchemaError) as caught:
        check_predicate("approval", pred)
    assert caught.value.field == "request_digest"


def test_large_integers_and_deep_nesting_are_judged_not_crashed() -> None:
    check_predicate("model-card", {"card": {"uri": "x", "digest": {"sha256": HEX}},
                                   "created_at": "2026-11-20T12:00:00Z", "extra": 2 ** 80})
    deep: Any = []
    for _ in range(900):
        deep = [deep]
    with pytest.raises(PredicateSchemaError):
        check_predicate("model-card", {"card": deep, "created_at": "2026-11-20T12:00:00Z"})


# ------------------------------------------------------- jsonschema-rs == jsonschema (the reference)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.5, 1.0, -1.0, 2.0]) | st.text(max_size=4)
    | st.sampled_from(["", "sha256:" + HEX, HEX, "2026-11-20T12:00:00Z", "approve", "files", "shards",
                       "regression", "2026-01-01", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "version", "digest", "sha256", "candidate", "baseline", "type",
                         "method", "p50", "p95", "uri", "id", "card", "metrics", "x"]), inner, max_size=3),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """``pattern`` as ECMA-262 reads it for our anchored patterns: ``$`` ends the string."""
    if isinstance(instance, str) and re.search(pattern.removesuffix("$") + r"\Z"
                                               if pattern.endswith("$") else pattern, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# ``jsonschema`` with ECMA-262 ``$``: otherwise it lets "…\n" through where the spec does not.
Reference = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})


def _reference(schema: Any) -> Any:
    return Reference(schema)


def _agree(kind: str, doc: Any) -> bool:
    verdict = _validator(kind).is_valid(doc)
    assert verdict == _reference(predicate_schema(kind)).is_valid(doc), (kind, doc)
    if not verdict:  # and the refusal always names a field
        with pytest.raises(PredicateSchemaError):
            check_predicate(kind, doc)
    return verdict


@pytest.fixture(scope="module")
def valid_examples(session_world: World) -> dict[str, dict[str, Any]]:
    bundle = load_bundle(session_world.policies)
    out = examples(session_world)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        req = load_request(session_world.request(Path(tmp), session_world.standard_evidence()))
        decision = evaluate_promotion(req, bundle, CompiledPolicy(bundle), now=NOW).decision
    out["decision-record"] = {"decided_at": decision.evaluated_at, "decision": decision.to_json()}
    out["packet-seal"] = _seal_predicate(session_world)
    return out


def _seal_predicate(world: World) -> dict[str, Any]:
    """A packet seal's predicate, as `slmgate promote --packet` writes it."""
    from slmgate.engine.packet._seal import seal_envelope

    raw = seal_envelope(b"a decision record", "dec-0123456789abcdef0123", ["sha256:" + "ab" * 32] * 3,
                        world.key("slmgate-gate"), NOW)
    return Statement.parse(Envelope.from_json(raw).payload).predicate


def test_a_packet_seal_conforms(session_world: World) -> None:
    check_predicate("packet-seal", _seal_predicate(session_world))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(PREDICATE_TYPES)))
def test_the_check_agrees_with_jsonschema_on_mutated_predicates(
    valid_examples: dict[str, dict[str, Any]], data: st.DataObject, kind: str
) -> None:
    doc = copy.deepcopy(valid_examples[kind])
    assert _agree(kind, doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
        if not path:
            doc = data.draw(JSON, label="document")
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=6), label="key")] = data.draw(JSON, label="value")
        else:
            parent[path[-1]] = data.draw(JSON, label="value")
    _agree(kind, doc)


@settings(max_examples=200, deadline=None)
@given(doc=JSON, kind=st.sampled_from(sorted(PREDICATE_TYPES)))
def test_the_check_agrees_with_jsonschema_on_arbitrary_json(doc: Any, kind: str) -> None:
    _agree(kind, doc)


KEYWORD_SCHEMAS = [
    {"type": "integer"}, {"type": "number"}, {"type": ["string", "null"]}, {"type": "boolean"},
    {"type": "object"}, {"type": "array"}, {"minimum": 1}, {"minimum": 0}, {"minLength": 2},
    {"minItems": 1}, {"minProperties": 1}, {"required": ["a"]}, {"pattern": "^a"},
    {"enum": [0, "x", None, True]}, {"enum": ["a", "ab"]}, {"const": 1}, {"const": [1, {"a": 1.0}]},
    {"const": False},
    {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
    {"additionalProperties": {"type": "integer"}}, {"propertyNames": {"pattern": "^[a-z]+$"}},
    {"items": {"type": "integer"}}, {"then": {"required": ["n"]}},
    {"if": {"properties": {"m": {"const": "s"}}}, "then": {"required": ["n"]}},
    {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string", "minLength": 1}}},
    True, False,
]
INSTANCES = [None, True, False, 0, 1, 1.0, 0.0, 1.5, -1, 2, "", "a", "ab", "b", "a\n", [], [1], [1.0], [True],
             [1, {"a": 1}], [1, {"a": 1.5}], {}, {"a": 1}, {"a": "x"}, {"A": 1}, {"m": "s"},
             {"m": "s", "n": 1}, {"n": None}]


@pytest.mark.parametrize("schema", KEYWORD_SCHEMAS, ids=lambda s: json.dumps(s))
def test_each_keyword_the_schemas_use_matches_jsonschema_at_its_boundaries(schema: Any) -> None:
    fast = jsonschema_rs.Draft202012Validator(schema)
    reference = _reference(schema)
    for instance in INSTANCES:
        assert fast.is_valid(instance) == reference.is_valid(instance), (schema, instance)


def test_the_keyword_cases_cover_every_keyword_the_schemas_use() -> None:
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            used.update(node)
            for key, value in node.items():
                if key not in ("properties", "$defs"):
                    walk(value)
                else:
                    for sub in value.values():
                        walk(sub)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for kind in PREDICATE_TYPES:
        walk(predicate_schema(kind))
    covered = {key for schema in KEYWORD_SCHEMAS if isinstance(schema, dict) for key in schema}
    annotations = {"$schema", "$id", "title", "description"}
    assert used - annotations <= covered, sorted(used - annotations - covered)
