"""Every JUnit report slmgate writes validates against Jenkins' junit-10.xsd (tests/assets): from
`policy test --format junit` (passing, failing, and a bundle that cannot be read) here, and from
`promote --format junit` and `ledger export --junit` in their own tests. The schema itself is
shown to refuse what junit-10.xsd refuses, so a passing validation means something."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from slmgate.engine.cli import main
from tests.conftest import World
from tests.junit_xsd import assert_valid_junit, junit_problems

VALID = ('<testsuites name="s" tests="1" failures="0" errors="0" time="0.25">'
         '<testsuite name="t" tests="1" failures="0" errors="0" skipped="0" time="1,234.5">'
         '<properties><property name="k" value="v"/></properties>'
         '<testcase name="c" classname="k" time="0.1"><skipped message="m">why</skipped>'
         '</testcase></testsuite></testsuites>')


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_the_schema_accepts_the_common_dialect() -> None:
    assert junit_problems(VALID) == []


@pytest.mark.parametrize("bad", [
    VALID.replace('errors="0" time="0.25"', 'errors="0" skipped="0" time="0.25"'),  # on testsuites
    VALID.replace('failures="0" errors="0" skipped="0"', 'failures="0" skipped="0"'),  # no errors
    VALID.replace('time="1,234.5"', 'time="1e-05"'),  # exponent notation
    VALID.replace('time="1,234.5"', 'time="-1"'),
    VALID.replace('classname="k"', 'classname="k" file="x.py"'),  # not a testcase attribute
    VALID.replace('<skipped message="m">', '<skipped message="m" reason="r">'),
    VALID.replace('<property name="k" value="v"/>', '<property name="k"/>'),
    VALID.replace('<testcase name="c"', '<testcase'),
])
def test_the_schema_refuses_what_junit_10_refuses(bad: str) -> None:
    assert junit_problems(bad)


def test_policy_test_junit_validates_and_times_each_case(world: World) -> None:
    code, out, _ = run("policy", "test", "--policies", world.policies, "--format", "junit")
    assert code == 0
    assert_valid_junit(out)
    from xml.etree import ElementTree

    suite = ElementTree.fromstring(out.split("?>", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("errors") == "0" and suite.get("skipped") == "0"
    times = [float(c.get("time", "-1")) for c in suite.iter("testcase")]
    assert len(times) >= 40 and all(t >= 0 for t in times) and sum(times) > 0


def test_a_failing_policy_test_still_validates(world: World, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(world.policies, policies)
    cases = policies / "tests" / "promotion.yaml"
    doc = yaml.safe_load(cases.read_text())
    doc["cases"][1]["expect"]["outcome"] = "approve"
    cases.write_text(yaml.safe_dump(doc))
    code, out, _ = run("policy", "test", "--policies", policies, "--format", "junit")
    assert code == 1 and "<failure" in out and "expected 'approve'" in out
    assert_valid_junit(out)


def test_an_unreadable_bundle_prints_one_failed_case_naming_the_file(
        world: World, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(world.policies, policies)
    (policies / "gates.yaml").write_text("eval: [unclosed\n")
    code, out, err = run("policy", "test", "--policies", policies, "--format", "junit")
    assert code == 2 and "gates.yaml" in err
    assert_valid_junit(out)
    assert "gates.yaml" in out and 'failures="1"' in out


def test_promote_junit_validates_on_approve(world: World, tmp_path: Path) -> None:
    from tests.conftest import recent

    req = world.request(tmp_path / "req", world.standard_evidence(when=recent()))
    code, out, err = run("promote", req, "--policies", world.policies, "--format", "junit")
    assert code == 0, err
    assert_valid_junit(out)
    assert "<failure" not in out and "<skipped" not in out
