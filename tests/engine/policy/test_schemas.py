"""The documents that cross a boundary conform to their published JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request
from slmgate.engine._schemas import schema
from slmgate.evidence.errors import InputError
from tests.conftest import NOW, World


@pytest.mark.parametrize("name", ["promotion-request", "facts", "policy-decision"])
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema(name))


def test_facts_and_decision_of_a_real_promotion_conform(world: World, tmp_path: Path) -> None:
    evidence = world.standard_evidence()
    evidence["rollback-plan"] = world.rollback_plan()
    request = load_request(world.request(tmp_path / "r", evidence))
    bundle = load_bundle(world.policies)
    result = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW)
    jsonschema.validate(result.facts, schema("facts"))
    jsonschema.validate(json.loads(json.dumps(result.decision.to_json())), schema("policy-decision"))
    assert result.facts["evidence"]["rollback"]["drill_age_days"] == 20
    assert result.facts["request"]["training_data"][0]["age_days"] == (NOW.date() - __import__(
        "datetime").date(2026, 6, 1)).days


def test_facts_schema_rejects_a_missing_field(world: World, tmp_path: Path) -> None:
    request = load_request(world.request(tmp_path / "r", world.standard_evidence()))
    bundle = load_bundle(world.policies)
    facts = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW).facts
    del facts["evidence"]["rejected"]
    with pytest.raises(jsonschema.ValidationError, match="rejected"):
        jsonschema.validate(facts, schema("facts"))


def test_request_with_bad_training_date_is_invalid_input(world: World, tmp_path: Path) -> None:
    from slmgate.evidence.errors import InputError
    path = world.request(tmp_path / "r", world.standard_evidence())
    doc = json.loads(path.read_text())
    doc["training_data"][0]["oldest_record"] = "2026-02-30"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"training_data\.0\.oldest_record"):
        load_request(path)


def test_a_refusal_stands_when_the_wording_validator_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonschema-rs decides; jsonschema only words the error. Should they disagree, the
    document is refused all the same (fail closed), in jsonschema-rs's words."""
    from slmgate.engine import _schemas

    class Lenient:
        def iter_errors(self, doc: object) -> list[object]:
            return []

    monkeypatch.setattr(_schemas, "_wording_validator", lambda name: Lenient())
    problem = _schemas.first_problem({"outcome": "approve"}, "policy-decision")
    assert problem is not None and problem[1]
    with pytest.raises(InputError):
        _schemas.check_document({"outcome": "approve"}, "policy-decision", source="x.json")
