"""CI reads `promote`'s stdout: a well-formed report in the asked format on every exit code
(2 and 4 included), REVIEW as skipped JUnit tests, a REVIEW exit code of the user's choosing,
and a Markdown pull-request comment."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from slmgate.engine.cli import main
from tests.conftest import World, recent
from tests.junit_xsd import assert_valid_junit

FAMILY = ["model_family_change"]


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _review_request(world: World, tmp_path: Path) -> Path:
    evidence = world.standard_evidence(when=recent())
    evidence["rollback-plan"] = world.rollback_plan(when=recent())
    return world.request(tmp_path / "req", evidence, change_classes=FAMILY, rid="req-ci-output")


def test_bad_input_still_prints_a_json_report_naming_the_file_and_field(
        world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence(when=recent()))
    doc = json.loads(req.read_text())
    doc["model"]["weights_digest"] = "md5:abc"
    req.write_text(json.dumps(doc))
    code, out, err = run("promote", req, "--policies", world.policies, "--format", "json")
    assert code == 2 and "model.weights_digest" in err
    report = json.loads(out)
    assert report["outcome"] == "error" and report["exit_code"] == 2
    assert report["error"]["file"] == str(req) and report["error"]["field"] == "model.weights_digest"


def test_bad_input_prints_one_failed_junit_case(world: World, tmp_path: Path) -> None:
    req = tmp_path / "request.json"
    req.write_text("{ not json")
    code, out, _ = run("promote", req, "--policies", world.policies, "--format", "junit")
    assert code == 2
    assert_valid_junit(out)
    root = ET.fromstring(out)
    assert root.get("failures") == "1" and root.get("tests") == "1"
    assert str(req) in out


def test_could_not_verify_prints_a_junit_report_with_the_refusal(world: World, tmp_path: Path) -> None:
    evidence = world.standard_evidence(when=recent())
    env = json.loads(evidence["eval-result"])
    env["signatures"][0]["sig"] = "A" * len(env["signatures"][0]["sig"])
    evidence["eval-result"] = json.dumps(env).encode()
    req = world.request(tmp_path / "req", evidence)
    code, out, _ = run("promote", req, "--policies", world.policies, "--format", "junit")
    assert code == 4
    assert_valid_junit(out)
    root = ET.fromstring(out)
    refused = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert "eval-result" in refused


def test_review_is_skipped_in_junit_not_failed(world: World, tmp_path: Path) -> None:
    req = _review_request(world, tmp_path)
    code, out, _ = run("promote", req, "--policies", world.policies, "--format", "junit")
    assert code == 3
    assert_valid_junit(out)
    root = ET.fromstring(out)
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0" and int(suite.get("skipped") or 0) == 2
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["slmgate.approval_needed.ml-lead"] == "1"


def test_review_exit_code_is_the_users_choice(world: World, tmp_path: Path) -> None:
    req = _review_request(world, tmp_path)
    code, out, _ = run("promote", req, "--policies", world.policies, "--format", "json",
                       "--review-exit-code", "0")
    assert code == 0 and json.loads(out)["outcome"] == "review"


def test_markdown_is_a_pull_request_comment(world: World, tmp_path: Path) -> None:
    req = _review_request(world, tmp_path)
    code, out, _ = run("promote", req, "--policies", world.policies, "--format", "markdown")
    assert code == 3
    assert out.startswith("### slmgate: ⏸️ REVIEW")
    assert ("| review | `approval.ml-lead` | the human_signoff tier needs 1 ml-lead approval(s), "
            "has 0 |") in out
    assert "Approvals still needed: 1× ml-lead, 1× release-manager" in out
    assert "stable digest (what approvals sign): `sha256:" in out
    assert "| `eval-result` | yes |" in out


def test_policy_check_on_the_shipped_template_says_to_run_init(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "policies"
    code, _, err = run("policy", "check", "--policies", root)
    assert code == 2 and "slmgate init" in err and "without keys" in err
