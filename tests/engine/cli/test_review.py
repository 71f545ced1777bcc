"""The review path from the CLI: `slmgate approve` signs the request's stable digest, `review
status` prints what is still needed, and `promote --approval/--approvals` counts approvals
supplied beside the request — a move of the request folder keeps them valid, any change to what
they cover voids them, and an approval that does not verify does not count (and says why)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slmgate.engine.cli import main
from slmgate.engine.request._request import approval_digest
from tests.conftest import World, recent

FAMILY = ["model_family_change"]  # human sign-off: one ml-lead and one release-manager


def slmgate(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def request_path(world: World, tmp_path: Path) -> Path:
    evidence = world.standard_evidence(when=recent())
    evidence["rollback-plan"] = world.rollback_plan(when=recent())
    return world.request(tmp_path / "req", evidence, change_classes=FAMILY, rid="req-review-cli")


def approve(world: World, request: Path, signer: str, out: Path, *extra: str) -> tuple[int, str, str]:
    return slmgate("approve", request, "--key", world.secrets / f"{signer}.key", "-o", out,
                   "--policies", world.policies, "--comment", "checked", *extra)


def promote(world: World, request: Path, *extra: str | Path) -> dict[str, Any]:
    code, out, err = slmgate("promote", request, "--policies", world.policies, "--format", "json",
                             *extra)
    assert code in (0, 1, 3, 4), err
    doc = json.loads(out)
    doc["exit"] = code
    return doc


def test_two_approvals_from_the_cli_take_the_request_from_review_to_approve(
        world: World, request_path: Path, tmp_path: Path) -> None:
    before = promote(world, request_path)
    assert before["outcome"] == "review" and before["exit"] == 3
    (tmp_path / "a").mkdir()
    code, out, err = approve(world, request_path, "ml-lead", tmp_path / "a" / "ml.json")
    assert code == 0, err
    assert "human_signoff" in out and before["stable_digest"] in out and "needs" in out
    assert approve(world, request_path, "release-manager", tmp_path / "a" / "rm.json")[0] == 0
    after = promote(world, request_path, "--approvals", tmp_path / "a")
    assert after["outcome"] == "approve" and after["exit"] == 0, after["findings"]
    one = promote(world, request_path, "--approval", tmp_path / "a" / "ml.json")
    assert one["outcome"] == "review" and [a["role"] for a in one["approvals_needed"]] == ["release-manager"]


def test_review_status_names_the_tier_what_is_needed_and_the_digest(
        world: World, request_path: Path) -> None:
    code, out, err = slmgate("review", "status", request_path, "--policies", world.policies,
                             "--format", "json")
    assert code == 0, err
    status = json.loads(out)
    assert status["tier"] == "human_signoff"
    assert sorted(a["role"] for a in status["approvals_needed"]) == ["ml-lead", "release-manager"]
    assert status["stable_digest"] == promote(world, request_path)["stable_digest"]


def test_moving_the_request_folder_keeps_the_approvals(
        world: World, request_path: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    approve(world, request_path, "ml-lead", tmp_path / "a" / "ml.json")
    approve(world, request_path, "release-manager", tmp_path / "a" / "rm.json")
    moved = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(request_path.parent, moved)
    doc = promote(world, moved / "request.json", "--approvals", tmp_path / "a")
    assert doc["outcome"] == "approve", doc["findings"]


@pytest.mark.parametrize("edit", [
    lambda d: d.update(change_classes=["model_family_change", "serving_config"]),
    lambda d: d["deployment"].update(regions=["eu", "us"]),
    lambda d: d.update(training_data=[]),
    lambda d: d["model"].update(version="9.9.9"),
])
def test_changing_what_the_approval_covers_voids_it(
        world: World, request_path: Path, tmp_path: Path, edit: Any) -> None:
    (tmp_path / "a").mkdir()
    approve(world, request_path, "ml-lead", tmp_path / "a" / "ml.json")
    approve(world, request_path, "release-manager", tmp_path / "a" / "rm.json")
    doc = json.loads(request_path.read_text())
    edit(doc)
    request_path.write_text(json.dumps(doc))
    after = promote(world, request_path, "--approvals", tmp_path / "a")
    assert after["outcome"] != "approve"


def test_an_edited_envelope_voids_the_approvals(world: World, request_path: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    approve(world, request_path, "ml-lead", tmp_path / "a" / "ml.json")
    approve(world, request_path, "release-manager", tmp_path / "a" / "rm.json")
    # a fresh, validly signed rollback plan swapped in after the approvals were signed
    (request_path.parent / "rollback-plan.dsse.json").write_bytes(
        world.rollback_plan(when=recent(), drill_days_ago=3))
    after = promote(world, request_path, "--approvals", tmp_path / "a")
    assert after["outcome"] == "review"
    assert {a["role"] for a in after["approvals_needed"]} == {"ml-lead", "release-manager"}


def test_a_supplied_approval_that_does_not_verify_does_not_count_and_says_why(
        world: World, request_path: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    approve(world, request_path, "ml-lead", tmp_path / "a" / "ml.json")
    # the runtime may not sign approvals: forged with the library, it is refused
    doc = json.loads(request_path.read_text())
    evidence = {i["ref"]: (request_path.parent / i["path"]).read_bytes() for i in doc["evidence"]}
    forged = world.envelope("runtime", "approval", {
        "request_id": doc["id"], "request_digest": approval_digest(doc, evidence),
        "decision": "approve", "approved_at": recent().strftime("%Y-%m-%dT%H:%M:%SZ")})
    (tmp_path / "a" / "rm.json").write_bytes(forged)
    after = promote(world, request_path, "--approvals", tmp_path / "a")
    assert after["outcome"] == "review" and after["exit"] == 3  # not a deny: it just does not count
    refused = [e for e in after["evidence"] if not e["verified"]]
    assert len(refused) == 1 and refused[0]["ref"].startswith("approval@")
    assert refused[0]["failed_step"] == "key-authorization"


def test_evidence_of_another_kind_passed_as_an_approval_is_refused(
        world: World, request_path: Path, tmp_path: Path) -> None:
    doc = promote(world, request_path, "--approval", request_path.parent / "eval-result.dsse.json")
    refused = [e for e in doc["evidence"] if not e["verified"]]
    assert [e["ref"][:9] for e in refused] == ["approval@"]
    assert "supplied as an approval" in refused[0]["reason"]


def test_approve_refuses_a_key_that_may_not_approve_or_the_wrong_role(
        world: World, request_path: Path, tmp_path: Path) -> None:
    code, _, err = approve(world, request_path, "runtime", tmp_path / "x.json")
    assert code == 2 and "may not sign approvals" in err
    code, _, err = approve(world, request_path, "ml-lead", tmp_path / "y.json", "--role", "release-manager")
    assert code == 2 and "--role" in err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()
    (tmp_path / "z.json").write_text("keep me")
    code, _, err = approve(world, request_path, "ml-lead", tmp_path / "z.json")
    assert code == 2 and (tmp_path / "z.json").read_text() == "keep me"
