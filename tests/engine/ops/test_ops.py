"""`slmgate ops import` and `slmgate ledger record` through the real CLI: weeks of a monitoring
export signed under the charter's cost model, recorded in the ledger and checked by `ledger
verify`; each bad path refused with the documented exit code and nothing written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from slmgate.engine.ledger._attestation import PendingAttestation
from slmgate.engine.ledger._store import Ledger
from slmgate.evidence import SigningKey, make_statement, sign_envelope
from tests.conftest import MODEL, NOW, World
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate  # noqa: F401  (fixture)

AT = "2026-11-27T09:00:00Z"  # reported the Friday after week 2026-W47
HEADER = ["week", "model", "model_digest", "tasks", "automated", "escalated", "defects", "errors",
          "successful", "device_hours", "latency_p95_ms", "bm.handle_time"]


def week_row(world: World, week: str = "2026-W47", **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "week": week, "model": MODEL, "model_digest": f"sha256:{world.candidate_sha}", "tasks": 400,
        "automated": 280, "escalated": 90, "defects": 20, "errors": 2, "successful": 280,
        "device_hours": 168, "latency_p95_ms": 4.2, "bm.handle_time": 1.1}
    row.update(over)
    return row


def write_csv(path: Path, rows: list[dict[str, object]], header: list[str] = HEADER) -> Path:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(text.getvalue())
    return path


def ops_import(world: World, metrics: Path, out: Path, *extra: str | Path,
               key: str = "monitoring"):  # type: ignore[no-untyped-def]
    return slmgate("ops", "import", metrics, "--policies", world.policies, "--sign",
                   world.secrets / f"{key}.key", "-o", out, "--at", AT, *extra)


def test_weeks_are_signed_under_the_charter_cost_model_recorded_and_verified(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    world = ledger_kit.world
    metrics = write_csv(tmp_path / "metrics.csv", [week_row(world, "2026-W46", automated=250),
                                                   week_row(world)])
    run = ops_import(world, metrics, tmp_path / "weeks", "--format", "json")
    assert run.returncode == 0, run.stderr
    week = json.loads(run.stdout)["weeks"][1]
    assert week["period"] == {"week": "2026-W47", "start": "2026-11-16", "end": "2026-11-22"}
    assert week["automated_share"] == 0.7 and week["escalation_share"] == 0.225
    assert week["defects_per_1000"] == 50.0 and week["error_rate"] == 0.005
    # 168 device-hours × 0.12 EUR (charter.yaml operations.cost_model) ÷ 280 successful tasks
    assert week["cost"]["total"] == pytest.approx(20.16)
    assert week["cost"]["per_successful_task"] == pytest.approx(0.072)
    # derived business metrics (operations.trajectories) beside the measured one
    assert week["business_metrics"] == {"automation_share": 0.7, "cost_per_ticket": 0.072,
                                        "handle_time": 1.1, "misroute_rate": 0.05}
    ledger = ledger_kit.copy(tmp_path / "ledger")
    for envelope in sorted((tmp_path / "weeks").iterdir()):
        rec = slmgate("ledger", "record", envelope, "--ledger", ledger, "--policies", world.policies,
                      "--signing-key", world.secrets / "slmgate-gate.key", "--format", "json")
        assert rec.returncode == 0, rec.stdout + rec.stderr
        assert json.loads(rec.stdout)["signers"] == ["monitoring"]
    again = slmgate("ledger", "record", envelope, "--ledger", ledger, "--policies", world.policies,
                    "--signing-key", world.secrets / "slmgate-gate.key")
    assert again.returncode == 2 and "already recorded" in again.stderr
    nowhere = slmgate("ledger", "record", envelope, "--ledger", tmp_path / "typo", "--policies",
                      world.policies, "--signing-key", world.secrets / "slmgate-gate.key")
    assert nowhere.returncode == 2 and "no such ledger" in nowhere.stderr
    assert not (tmp_path / "typo").exists()
    verify = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert verify.returncode == 0, verify.stdout
    assert "5 decision(s)" in verify.stdout  # three decisions and two weeks in one chain


def test_one_week_goes_to_one_envelope_file(world: World, tmp_path: Path) -> None:
    metrics = write_csv(tmp_path / "metrics.csv", [week_row(world)])
    run = ops_import(world, metrics, tmp_path / "w47.dsse.json")
    assert run.returncode == 0, run.stderr
    envelope = json.loads((tmp_path / "w47.dsse.json").read_bytes())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"


@pytest.mark.parametrize(("over", "line", "column", "expected"), [
    ({"tasks": "12.5"}, 3, "tasks", "a whole number"),
    ({"automated": 500}, 3, "automated", "at most tasks (400)"),
    ({"week": "2026-W60"}, 3, "week", "an ISO 8601 week"),
    ({"model_digest": "sha256:abc"}, 3, "model_digest", "64 lower-case hex"),
    ({"latency_p95_ms": "fast"}, 3, "latency_p95_ms", "a finite number"),
    ({"bm.handle_time": "-1"}, 3, "bm.handle_time", "in minutes"),
    ({"week": "2026-W50"}, 3, "week", "a week that has begun"),
])
def test_a_malformed_row_is_named_by_line_and_column_and_nothing_is_written(
        world: World, tmp_path: Path, over: dict[str, object], line: int, column: str,
        expected: str) -> None:
    metrics = write_csv(tmp_path / "metrics.csv", [week_row(world, "2026-W46"), week_row(world, **over)])
    run = ops_import(world, metrics, tmp_path / "weeks")
    assert run.returncode == 2, run.stdout
    assert f"metrics.csv: line {line}, column {column}: expected" in run.stderr
    assert expected in run.stderr
    assert not (tmp_path / "weeks").exists()


def test_a_missing_column_or_a_derived_metric_given_is_refused(world: World, tmp_path: Path) -> None:
    no_handle = write_csv(tmp_path / "a.csv", [week_row(world)], HEADER[:-1])
    run = ops_import(world, no_handle, tmp_path / "a.dsse.json")
    assert run.returncode == 2 and "missing column bm.handle_time" in run.stderr
    derived = write_csv(tmp_path / "b.csv", [week_row(world, **{"bm.cost_per_ticket": 0.1})],
                        [*HEADER, "bm.cost_per_ticket"])
    run = ops_import(world, derived, tmp_path / "b.dsse.json")
    assert run.returncode == 2 and "line 2, column bm.cost_per_ticket" in run.stderr
    assert "derived" in run.stderr
    unknown = write_csv(tmp_path / "c.csv", [week_row(world)], [*HEADER, "mood"])
    run = ops_import(world, unknown, tmp_path / "c.dsse.json")
    assert run.returncode == 2 and "line 1: unknown column 'mood'" in run.stderr
    assert not any(tmp_path.glob("*.dsse.json"))


def test_a_json_export_names_the_element_and_key(world: World, tmp_path: Path) -> None:
    rows = [week_row(world), week_row(world, "2026-W46", errors=-1)]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    run = ops_import(world, tmp_path / "m.json", tmp_path / "out")
    assert run.returncode == 2 and "m.json: [1], column errors: expected a whole number" in run.stderr


def test_an_envelope_signed_by_an_untrusted_key_is_refused_by_ledger_record(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    world = ledger_kit.world
    metrics = write_csv(tmp_path / "metrics.csv", [week_row(world)])
    ledger = ledger_kit.copy(tmp_path / "ledger")
    before = sorted(p.name for p in (ledger / "entries").rglob("*"))
    stranger = tmp_path / "stranger.key"
    stranger.write_bytes(SigningKey.generate().private_pem())
    for name, key in (("not trusted", stranger), ("may not sign ops-metrics", world.secrets / "runtime.key")):
        assert slmgate("ops", "import", metrics, "--policies", world.policies, "--sign", key,
                       "-o", tmp_path / f"{name}.dsse.json", "--at", AT).returncode == 0
        run = slmgate("ledger", "record", tmp_path / f"{name}.dsse.json", "--ledger", ledger,
                      "--policies", world.policies, "--signing-key", world.secrets / "slmgate-gate.key",
                      "--format", "json")
        assert run.returncode == 4, (name, run.stdout, run.stderr)
        assert json.loads(run.stdout)["step"] in ("signature", "key-authorization")
    assert sorted(p.name for p in (ledger / "entries").rglob("*")) == before


def test_a_deployment_attestation_is_not_recorded_with_ledger_record(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    world = ledger_kit.world
    from slmgate.engine import load_bundle
    from slmgate.engine.deploy._verify import DeploymentCheck

    check = DeploymentCheck("eu-west", "h", MODEL, f"sha256:{world.candidate_sha}", 2, ledger_kit.ids[0],
                            load_bundle(world.policies).digest, "ticket_routing", ("ticket_text",), NOW)
    (tmp_path / "d.dsse.json").write_bytes(check.attestation(world.key("slmgate-gate")))
    run = slmgate("ledger", "record", tmp_path / "d.dsse.json", "--ledger", ledger_kit.copy(tmp_path / "l"),
                  "--policies", world.policies, "--signing-key", world.secrets / "slmgate-gate.key")
    assert run.returncode == 2 and "deploy verify --record" in run.stderr


def test_ledger_verify_refuses_ops_metrics_recorded_past_the_trust_policy(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    """Written into the chain by a gate that skipped `ledger record`'s check: the audit sees it."""
    world = ledger_kit.world
    metrics = write_csv(tmp_path / "metrics.csv", [week_row(world)])
    assert ops_import(world, metrics, tmp_path / "w.dsse.json", key="runtime").returncode == 0
    ledger = ledger_kit.copy(tmp_path / "ledger")
    Ledger(ledger, signing_key=world.key("slmgate-gate")).record_pending(PendingAttestation(
        "ops-metrics", (tmp_path / "w.dsse.json").read_bytes(), "ops: week 47"))
    verify = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert verify.returncode == 4 and "allows to sign ops-metrics" in verify.stdout


def test_an_inconsistent_predicate_is_refused_even_when_well_signed(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    world = ledger_kit.world
    metrics = write_csv(tmp_path / "metrics.csv", [week_row(world)])
    run = ops_import(world, metrics, tmp_path / "w.dsse.json", "--format", "json")
    predicate = json.loads(run.stdout)["weeks"][0]
    predicate["automated_share"] = 1.5  # the schema cannot say "at most 1"
    envelope = sign_envelope(make_statement(MODEL, world.candidate_sha, "ops-metrics", predicate),
                             [world.key("monitoring")]).to_json()
    (tmp_path / "bad.dsse.json").write_bytes(envelope)
    rec = slmgate("ledger", "record", tmp_path / "bad.dsse.json", "--ledger",
                  ledger_kit.copy(tmp_path / "l"), "--policies", world.policies,
                  "--signing-key", world.secrets / "slmgate-gate.key")
    assert rec.returncode == 4 and "automated_share" in rec.stdout
