"""Training data from signed provenance, not the requester's word: each attack on the training
data runs through the real `slmgate promote` and is denied; the binding of data cards to the
verified training-run is tested on its own."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from slmgate.engine.policy._bundle import load_bundle
from slmgate.engine.policy._evaluate import verify_request_evidence
from slmgate.engine.policy._facts import build_facts
from slmgate.engine.request._request import load_request
from tests.conftest import NOW, World
from tests.engine.cli.test_promote_cli import promote

APPROVE, DENY, UNVERIFIED = 0, 1, 4


def _decide(world: World, folder: Path, evidence: dict[str, bytes], *,
            training_data: list[dict[str, str]] | None = None,
            change_classes: list[str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    req = world.request(folder, evidence, change_classes=change_classes)
    if training_data is not None:
        doc = json.loads(req.read_text())
        doc["training_data"] = training_data
        req.write_text(json.dumps(doc))
    r = promote(world, req, "--format", "json")
    assert r.returncode in (0, 1, 3, 4), r.stderr
    return r.returncode, json.loads(r.stdout)


def _findings(doc: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(f["rule_id"] for f in doc["findings"])


def test_a_retrain_with_signed_provenance_approves(world: World, tmp_path: Path) -> None:
    code, doc = _decide(world, tmp_path / "r", world.standard_evidence())
    assert code == APPROVE, doc["findings"]
    assert {"purpose.training_data", "purpose.training_data.matches_provenance",
            "purpose.dataset.tickets_scrubbed"} <= {c["rule_id"] for c in doc["checks"]}


def test_a_retrain_on_a_dataset_outside_its_purpose_is_denied(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    del ev["data-card-tickets_scrubbed"]
    ev["training-run"] = world.training_run(["live_tickets"])
    ev["data-card-live_tickets"] = world.data_card("live_tickets", purpose="ticket_routing")
    code, doc = _decide(world, tmp_path / "r", ev,
                        training_data=[{"dataset": "live_tickets", "oldest_record": "2026-06-01"}])
    assert code == DENY
    assert _findings(doc) == ["purpose.dataset.live_tickets"]
    assert "does not allow training" in doc["findings"][0]["message"]


def test_a_card_with_a_future_oldest_record_is_denied(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    ev["data-card-tickets_scrubbed"] = world.data_card("tickets_scrubbed", oldest="2099-01-01")
    code, doc = _decide(world, tmp_path / "r", ev,
                        training_data=[{"dataset": "tickets_scrubbed", "oldest_record": "2099-01-01"}])
    assert code == DENY
    assert _findings(doc) == ["purpose.dataset.tickets_scrubbed"]
    assert "in the future" in doc["findings"][0]["message"]


def test_a_training_run_naming_a_dataset_without_a_card_is_denied(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    ev["training-run"] = world.training_run(["tickets_scrubbed", "golden_sets"])
    code, doc = _decide(world, tmp_path / "r", ev, training_data=[])
    assert code == DENY
    assert _findings(doc) == ["purpose.dataset.golden_sets"]
    assert "no verified data card" in doc["findings"][0]["message"]


@pytest.mark.parametrize("stated", [
    [{"dataset": "golden_sets", "oldest_record": "2026-06-01"}],
    [{"dataset": "tickets_scrubbed", "oldest_record": "2026-10-01"}],
    [{"dataset": "tickets_scrubbed", "oldest_record": "2026-06-01"},
     {"dataset": "golden_sets", "oldest_record": "2026-06-01"}],
], ids=["another dataset", "another oldest record", "one dataset more"])
def test_a_request_whose_training_data_differs_from_the_provenance_is_denied(
        world: World, tmp_path: Path, stated: list[dict[str, str]]) -> None:
    code, doc = _decide(world, tmp_path / "r", world.standard_evidence(), training_data=stated)
    assert code == DENY
    assert _findings(doc) == ["purpose.training_data.matches_provenance"]


def test_a_retrain_without_a_training_run_is_denied(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    del ev["training-run"], ev["data-card-tickets_scrubbed"]
    code, doc = _decide(world, tmp_path / "r", ev, training_data=[])
    assert code == DENY
    assert _findings(doc) == ["purpose.training_data"]


def test_a_training_run_signed_by_the_data_owner_is_refused(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    ev["training-run"] = world.training_run(["tickets_scrubbed"], signer="data-owner")
    code, doc = _decide(world, tmp_path / "r", ev)
    assert code == UNVERIFIED
    refused = {e["ref"]: e["failed_step"] for e in doc["evidence"] if not e["verified"]}
    assert refused["training-run"] == "key-authorization"


def test_a_data_card_signed_by_the_trainer_is_refused(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    ev["data-card-tickets_scrubbed"] = world.data_card("tickets_scrubbed", signer="trainer")
    code, doc = _decide(world, tmp_path / "r", ev)
    assert code == UNVERIFIED
    assert "purpose.dataset.tickets_scrubbed" in _findings(doc)


def test_a_card_about_a_dataset_the_run_does_not_name_is_refused(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    ev["data-card-golden_sets"] = world.data_card("golden_sets")
    code, doc = _decide(world, tmp_path / "r", ev)
    assert code == UNVERIFIED
    refused = {e["ref"]: e for e in doc["evidence"] if not e["verified"]}
    assert refused["data-card-golden_sets"]["failed_step"] == "subject"


def test_two_cards_about_one_dataset_are_both_refused(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    ev["data-card-again"] = world.data_card("tickets_scrubbed", oldest="2026-07-01")
    code, doc = _decide(world, tmp_path / "r", ev)
    assert code == UNVERIFIED
    refused = {e["ref"]: e["failed_step"] for e in doc["evidence"] if not e["verified"]}
    assert refused == {"data-card-tickets_scrubbed": "ambiguous", "data-card-again": "ambiguous"}


def test_a_card_binds_by_digest_not_by_name(world: World, tmp_path: Path) -> None:
    """A card about other bytes under the run's dataset name does not stand in for it."""
    ev = world.standard_evidence()
    ev["data-card-tickets_scrubbed"] = world.data_card("tickets_scrubbed", sha256="ee" * 32)
    code, doc = _decide(world, tmp_path / "r", ev)
    assert code == UNVERIFIED
    assert "purpose.dataset.tickets_scrubbed" in _findings(doc)


def _derivative_evidence(world: World, *, source_oldest: str = "2026-06-01") -> dict[str, bytes]:
    ev = world.standard_evidence()
    flow = "logged_prompts_for_distillation"
    source = ("tickets_scrubbed", world.dataset_sha("tickets_scrubbed"))
    ev["training-run"] = world.training_run([flow])
    ev["data-card-tickets_scrubbed"] = world.data_card("tickets_scrubbed", oldest=source_oldest)
    ev[f"data-card-{flow}"] = world.data_card(flow, source=source)
    return ev


def test_a_derivative_is_checked_along_its_chain(world: World, tmp_path: Path) -> None:
    stated = [{"dataset": "logged_prompts_for_distillation", "oldest_record": "2026-06-01"}]
    code, doc = _decide(world, tmp_path / "ok", _derivative_evidence(world), training_data=stated)
    assert code == APPROVE, doc["findings"]
    code, doc = _decide(world, tmp_path / "old", _derivative_evidence(world, source_oldest="2025-01-01"),
                        training_data=stated)
    assert code == DENY
    assert _findings(doc) == ["purpose.dataset.logged_prompts_for_distillation"]
    assert "retention" in doc["findings"][0]["message"]


def test_data_cards_are_verified_unbound_then_bound_to_the_run(world: World, tmp_path: Path) -> None:
    req = load_request(world.request(tmp_path / "r", _derivative_evidence(world)))
    bundle = load_bundle(world.policies)
    kept, results = verify_request_evidence(req, bundle, NOW + timedelta(minutes=1))
    assert sorted(ev.ref for ev in kept if ev.kind == "data-card") == [
        "data-card-logged_prompts_for_distillation", "data-card-tickets_scrubbed"]
    card = next(r for r in results if r.ref == "data-card-tickets_scrubbed")
    assert card.verified and card.subject_sha256 == world.dataset_sha("tickets_scrubbed")


def _facts(world: World, folder: Path, evidence: dict[str, bytes]) -> dict:  # type: ignore[type-arg]
    req = load_request(world.request(folder, evidence))
    bundle = load_bundle(world.policies)
    now = NOW + timedelta(minutes=1)
    kept, results = verify_request_evidence(req, bundle, now)
    return build_facts(req, kept, [r for r in results if not r.verified], [], now)


def test_a_derivative_chain_that_loops_is_cut(world: World, tmp_path: Path) -> None:
    a, b = "logged_prompts_for_distillation", "tickets_scrubbed"
    ev = world.standard_evidence()
    ev["training-run"] = world.training_run([a])
    ev["data-card-tickets_scrubbed"] = world.data_card(b, source=(a, world.dataset_sha(a)))
    ev[f"data-card-{a}"] = world.data_card(a, source=(b, world.dataset_sha(b)))
    facts = _facts(world, tmp_path / "r", ev)
    (dataset,) = facts["evidence"]["training"]["datasets"]
    assert dataset["cut"] is True and [link["named"] for link in dataset["links"]] == [a, b]
    assert facts["evidence"]["rejected"] == []


def test_training_facts_carry_ages_signers_and_the_base_model(world: World, tmp_path: Path) -> None:
    facts = _facts(world, tmp_path / "r", world.standard_evidence())
    training = facts["evidence"]["training"]
    assert training["run"]["signers"] == ["trainer"]
    assert training["run"]["base_model"] == {"name": "support-triage-base", "sha256": world.baseline_sha}
    card = training["datasets"][0]["links"][0]["card"]
    assert card["age_days"] == (NOW.date() - date(2026, 6, 1)).days
    assert card["signers"] == ["data-owner"] and card["access_role"] == "ml-engineering"


def test_without_a_training_run_every_card_is_unbound(world: World, tmp_path: Path) -> None:
    ev = world.standard_evidence()
    del ev["training-run"]
    facts = _facts(world, tmp_path / "r", ev)
    assert facts["evidence"]["training"] == {"run": None, "datasets": []}
    (rejected,) = facts["evidence"]["rejected"]
    assert rejected["step"] == "subject" and "no verified training-run" in rejected["reason"]


def test_a_data_card_envelope_edited_to_claim_another_kind_is_refused(world: World, tmp_path: Path) -> None:
    """The binding rule is read from the payload before verification; an envelope whose payload
    was edited (to dodge the weights binding or to pose as a card) fails its signature."""
    import base64

    env = json.loads(world.envelope("eval-harness", "eval-result", {"x": 1}, subject="dd" * 32))
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicateType"] = "https://slmgate.dev/data-card/v0.2"
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    ev = world.standard_evidence()
    ev["posing"] = json.dumps(env).encode()
    facts = _facts(world, tmp_path / "r", ev)
    assert [r["ref"] for r in facts["evidence"]["rejected"]] == ["posing"]
    assert facts["evidence"]["rejected"][0]["step"] == "signature"


def test_a_card_whose_predicate_names_another_digest_than_its_subject_is_refused(
        world: World, tmp_path: Path) -> None:
    from slmgate.evidence import make_statement, sign_envelope
    from tests.conftest import data_card_predicate

    digest = world.dataset_sha("tickets_scrubbed")
    statement = make_statement("tickets_scrubbed", digest, "data-card",
                               data_card_predicate("tickets_scrubbed", "ee" * 32))
    ev = world.standard_evidence()
    ev["data-card-tickets_scrubbed"] = sign_envelope(statement, [world.key("data-owner")]).to_json()
    facts = _facts(world, tmp_path / "r", ev)
    (rejected,) = facts["evidence"]["rejected"]
    assert rejected["ref"] == "data-card-tickets_scrubbed" and rejected["step"] == "subject"
    assert facts["evidence"]["training"]["datasets"][0]["links"][0]["card"] is None
