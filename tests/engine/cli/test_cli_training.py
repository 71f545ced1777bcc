"""`slmgate evidence data-card` and `training-run` through the real CLI: what they sign carries a
retrain through `slmgate promote`; a card that does not hold up exits 2 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import World
from tests.engine.cli.test_promote_cli import AT, promote, slmgate

CARD = {
    "name": "tickets_scrubbed",
    "provenance": {"category": "customer_provided", "origin": {"name": "support-desk tickets"}},
    "purpose": "model_improvement", "lawful_basis": "legitimate_interests",
    "records": {"oldest": "2026-06-01", "newest": "2026-11-01", "rows": 50},
    "pii": {"scan": "presidio 2.2", "redaction": "typed placeholders"},
    "access_role": "ml-engineering",
}


def _card(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / f"card-{'-'.join(changes) or 'ok'}.yaml"
    path.write_text(yaml.safe_dump({**CARD, **changes}))
    return path


def test_signed_provenance_from_the_cli_carries_a_retrain(world: World, tmp_path: Path) -> None:
    dataset = world.datasets / "tickets_scrubbed"
    world.dataset_sha("tickets_scrubbed")  # writes it
    card_env, run_env = tmp_path / "card.dsse.json", tmp_path / "run.dsse.json"
    r = slmgate("evidence", "data-card", dataset, "--card", _card(tmp_path), "--sign",
                world.secrets / "data-owner.key", "-o", card_env, "--created-at", "2026-11-20T12:00:00Z",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    assert card["dataset"]["digest"]["sha256"] == world.dataset_sha("tickets_scrubbed")
    assert card["records"]["oldest"] == "2026-06-01"  # a YAML date, written as a date
    r = slmgate("evidence", "training-run", world.candidate, "--model-name", "support-triage",
                "--dataset", f"tickets_scrubbed={dataset}", "--base-model", f"base={world.baseline}",
                "--builder", "https://ci.example.com/trainer", "--param", "epochs=6",
                "--finished-at", "2026-11-20T12:00:00Z", "--sign", world.secrets / "trainer.key",
                "-o", run_env)
    assert r.returncode == 0, r.stderr
    assert "training-data tickets_scrubbed" in r.stdout and "base-model base" in r.stdout
    ev = world.standard_evidence()
    ev["training-run"], ev["data-card-tickets_scrubbed"] = run_env.read_bytes(), card_env.read_bytes()
    r = promote(world, world.request(tmp_path / "req", ev), "--format", "json")
    assert r.returncode == 0, r.stdout
    r = slmgate("evidence", "verify", card_env, "--trust", world.policies / "trust.yaml",
                "--subject", f"sha256:{world.dataset_sha('tickets_scrubbed')}", "--at", AT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_card_that_does_not_hold_up_exits_2_and_writes_nothing(world: World, tmp_path: Path) -> None:
    world.dataset_sha("tickets_scrubbed")
    out = tmp_path / "card.dsse.json"
    for card, field in [(_card(tmp_path, lawful_basis="because"), "lawful_basis"),
                        (_card(tmp_path, provenance={"category": "derivative", "origin": {"name": "x"}}),
                         "provenance.origin.digest"),
                        (_card(tmp_path, records={"oldest": "2026-10-01", "newest": "2026-06-01",
                                                  "rows": 1}), "records.newest"),
                        (_card(tmp_path, owner="me"), "owner")]:
        r = slmgate("evidence", "data-card", world.datasets / "tickets_scrubbed", "--card", card,
                    "--sign", world.secrets / "data-owner.key", "-o", out)
        assert r.returncode == 2, r.stderr
        assert str(card) in r.stderr and field in r.stderr, r.stderr
        assert not out.exists()


def test_a_training_run_needs_a_dataset_as_name_and_folder(world: World, tmp_path: Path) -> None:
    out = tmp_path / "run.dsse.json"
    r = slmgate("evidence", "training-run", world.candidate, "--model-name", "support-triage",
                "--dataset", str(world.datasets), "--builder", "ci", "--sign",
                world.secrets / "trainer.key", "-o", out)
    assert r.returncode == 2 and "--dataset" in r.stderr and not out.exists()


def test_help_explains_both_commands() -> None:
    r = slmgate("evidence", "data-card", "--help")
    assert r.returncode == 0 and "content digest" in r.stdout and "derivative" in r.stdout
    r = slmgate("evidence", "training-run", "--help")
    assert r.returncode == 0 and "SLSA" in r.stdout and "--base-model" in r.stdout
