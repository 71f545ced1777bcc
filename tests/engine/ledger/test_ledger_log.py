"""`slmgate ledger log`: the decision history filtered by model, outcome and date, with the
fields a decision's bundle masks (charter.yaml ``decision_log.mask``) masked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from slmgate.engine import (
    BundleInvalid,
    CompiledPolicy,
    Ledger,
    evaluate_promotion,
    load_bundle,
    load_request,
)
from slmgate.engine.ledger._decision_log import MASKED, apply_mask
from slmgate.engine.promote import record_in_ledger, sign_decision_record
from slmgate.evidence.errors import InputError
from tests.conftest import NOW, World
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate

__all__ = ["ledger_kit"]


def _jsonl(*args: str | Path) -> list[dict]:  # type: ignore[type-arg]
    r = slmgate("ledger", "log", *args, "--format", "jsonl")
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_log_lists_every_decision_oldest_first(ledger_kit: LedgerKit) -> None:
    records = _jsonl("--ledger", ledger_kit.ledger)
    assert [r["decision_id"] for r in records] == list(ledger_kit.ids)
    assert [r["outcome"] for r in records] == ["approve", "deny", "review"]
    first = records[0]
    assert first["seq"] == 1 and len(first["commit"]) == 40 and first["timestamp"] == "2026-11-20T12:01:00Z"
    # the default charter masks who asked (decision_log.mask); the ledger itself keeps it
    assert first["request"]["requested_by"] == "<masked>"
    assert first["masked"] == ["request.requested_by"]
    text = slmgate("ledger", "log", "--ledger", ledger_kit.ledger).stdout.splitlines()
    assert len(text) == 3 and "DENY" in text[1] and "gate.stress.accuracy.max_drop" in text[1]


@pytest.mark.parametrize("args,expected", [
    (("--outcome", "deny"), [1]),
    (("--outcome", "approve", "--outcome", "review"), [0, 2]),
    (("--model", "support-triage"), [0, 1, 2]),
    (("--model", "other-model"), []),
    (("--since", "2026-11-20T12:02:00Z"), [1, 2]),
    (("--until", "2026-11-20T12:01:30Z"), [0]),
    (("--since", "2026-11-20", "--until", "2026-11-20"), [0, 1, 2]),
    (("--since", "2026-11-21"), []),
])
def test_log_filters(ledger_kit: LedgerKit, args: tuple[str, ...], expected: list[int]) -> None:
    records = _jsonl("--ledger", ledger_kit.ledger, *args)
    assert [r["decision_id"] for r in records] == [ledger_kit.ids[i] for i in expected]


def test_a_bad_date_or_ledger_exits_2(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    r = slmgate("ledger", "log", "--ledger", ledger_kit.ledger, "--since", "yesterday")
    assert r.returncode == 2 and "--since" in r.stderr
    r = slmgate("ledger", "log", "--ledger", tmp_path / "nowhere")
    assert r.returncode == 2 and "no such ledger" in r.stderr


def _masked_ledger(world: World, tmp_path: Path, mask: list[str]) -> Path:
    """A decision made under a bundle whose charter masks ``mask`` (``decision_log.mask``)."""
    policies = tmp_path / "policies"
    shutil.copytree(world.policies, policies, ignore=shutil.ignore_patterns(".git"))
    charter = policies / "charter.yaml"
    doc = yaml.safe_load(charter.read_text())
    doc["decision_log"] = {"mask": mask}
    charter.write_text(yaml.safe_dump(doc, sort_keys=False))
    bundle = load_bundle(policies)
    policy = CompiledPolicy(bundle)
    ledger = Ledger(tmp_path / "ledger", signing_key=world.key("slmgate-gate"))
    req = load_request(world.request(tmp_path / "r", world.standard_evidence(stress_accuracy=0.7)))
    decision = evaluate_promotion(req, bundle, policy, now=NOW).decision
    record = sign_decision_record(decision, world.key("slmgate-gate"))
    record_in_ledger(ledger, decision, record, req, [e.raw for e in req.evidence], bundle)
    return ledger.path


def test_fields_the_bundle_masks_are_masked(world: World, tmp_path: Path) -> None:
    ledger = _masked_ledger(world, tmp_path, ["request.requested_by", "findings.message"])
    [record] = _jsonl("--ledger", ledger)
    assert record["request"]["requested_by"] == MASKED
    assert record["findings"] and all(f["message"] == MASKED for f in record["findings"])
    assert record["findings"][0]["rule_id"].startswith("gate.stress")  # only the named field
    assert record["masked"] == ["findings.message", "request.requested_by"]
    text = slmgate("ledger", "log", "--ledger", ledger).stdout
    assert "tests@example.com" not in text and MASKED in text


def test_a_mask_naming_no_field_is_refused_not_ignored(world: World, tmp_path: Path) -> None:
    with pytest.raises(BundleInvalid, match=r"charter\.yaml:\d+: decision_log\.mask\.0: unallowed value"):
        _masked_ledger(world, tmp_path, ["request.requestd_by"])
    with pytest.raises(InputError, match=r"request\.requestd_by"):
        apply_mask({"request": {}}, ["request.requestd_by"])


def test_apply_mask_walks_lists_and_leaves_the_original() -> None:
    record = {"request": {"requested_by": "a"}, "findings": [{"message": "m1"}, {"message": "m2"}]}
    out = apply_mask(record, ["findings.message", "request"])
    assert out["findings"] == [{"message": MASKED}] * 2 and out["request"] == MASKED
    assert record["findings"][0]["message"] == "m1"
    with pytest.raises(InputError, match="unknown field"):
        apply_mask(record, ["findings.nope"])
