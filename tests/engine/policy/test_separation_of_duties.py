"""Separation of duties on signed approvals: one person counts for one role, and the requester
(matched by the e-mail trust.yaml gives the approver's identity) cannot approve their own
request — both per tier in tiers.yaml, on by default."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request
from tests.conftest import NOW, World

FAMILY = ["model_family_change"]  # the human sign-off tier: one ml-lead and one release-manager


def _decide(world: World, folder: Path, policies: Path | None = None, *,
            requested_by: str = "tests@example.com",
            signers: tuple[str, str] = ("ml-lead", "release-manager")) -> Any:
    evidence = world.standard_evidence()
    evidence["rollback-plan"] = world.rollback_plan()
    items = [{"ref": k, "path": f"{k}.dsse.json"} for k in evidence]
    doc = world.request_doc("req-sod", FAMILY, items)
    doc["requested_by"] = requested_by
    for i, signer in enumerate(signers):
        evidence[f"approval-{i}"] = world.approval(signer, doc, evidence)
    path = world.request(folder, evidence, change_classes=FAMILY, rid="req-sod")
    text = path.read_text().replace('"tests@example.com"', f'"{requested_by}"')
    path.write_text(text)
    bundle = load_bundle(policies or world.policies)
    return evaluate_promotion(load_request(path), bundle, CompiledPolicy(bundle), now=NOW).decision


def _policies(world: World, dest: Path, *, tiers: dict[str, Any] | None = None,
              same_person: bool = False) -> Path:
    shutil.copytree(world.policies, dest)
    if tiers:
        doc = yaml.safe_load((dest / "tiers.yaml").read_text())
        doc["tiers"]["human_signoff"].update(tiers)
        (dest / "tiers.yaml").write_text(yaml.safe_dump(doc))
    if same_person:  # one person, Ada, holds both the ml-lead and the release-manager keys
        doc = yaml.safe_load((dest / "trust.yaml").read_text())
        doc["identities"]["ml-lead"]["person"] = "ada"
        doc["identities"]["release-manager"]["person"] = "ada"
        (dest / "trust.yaml").write_text(yaml.safe_dump(doc))
    return dest


def test_two_people_in_two_roles_approve(world: World, tmp_path: Path) -> None:
    d = _decide(world, tmp_path / "req")
    assert d.outcome == "approve", d.findings


def test_one_person_in_both_roles_satisfies_one_of_them(world: World, tmp_path: Path) -> None:
    d = _decide(world, tmp_path / "req", _policies(world, tmp_path / "p", same_person=True))
    assert d.outcome == "review"
    assert [f["rule_id"] for f in d.findings] == ["approval.distinct_people"]
    assert "2 distinct people, have 1" in d.findings[0]["message"]


def test_a_tier_may_let_one_person_hold_two_roles(world: World, tmp_path: Path) -> None:
    policies = _policies(world, tmp_path / "p", tiers={"distinct_approvers": False}, same_person=True)
    assert _decide(world, tmp_path / "req", policies).outcome == "approve"


def test_the_requester_cannot_approve_their_own_request(world: World, tmp_path: Path) -> None:
    d = _decide(world, tmp_path / "req", requested_by="Release-Manager@Example.com")
    assert d.outcome == "review"
    assert {f["rule_id"] for f in d.findings} == {"approval.not_requester", "approval.release-manager"}
    assert d.approvals_needed == [{"role": "release-manager", "count": 1}]


def test_a_tier_may_let_the_requester_approve(world: World, tmp_path: Path) -> None:
    policies = _policies(world, tmp_path / "p", tiers={"requester_may_approve": True})
    d = _decide(world, tmp_path / "req", policies, requested_by="release-manager@example.com")
    assert d.outcome == "approve", d.findings
