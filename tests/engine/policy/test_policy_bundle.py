"""The policy bundle: validation that names file, line and key; the Rego through regopy; the
policy test runner, including that a wrong expectation fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from slmgate.engine import BundleInvalid, CompiledPolicy, load_bundle
from slmgate.engine.cli import main
from slmgate.engine.policy._policytest import run_policy_tests
from slmgate.evidence.errors import PolicyError
from tests.conftest import World


@pytest.fixture
def policies(world: World, tmp_path: Path) -> Path:
    dest = tmp_path / "policies"
    shutil.copytree(world.policies, dest, ignore=shutil.ignore_patterns(".git"))
    return dest


def _edit(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_default_bundle_is_valid_and_digest_is_stable(world: World) -> None:
    a, b = load_bundle(world.policies), load_bundle(world.policies)
    assert a.digest == b.digest and a.digest.startswith("sha256:")
    assert a.revision and len(a.revision) == 40


def test_digest_changes_when_a_gate_changes(world: World, policies: Path) -> None:
    _edit(policies / "gates.yaml", lambda d: d["eval"]["stress"]["accuracy"].update(min=0.81))
    assert load_bundle(policies).digest != load_bundle(world.policies).digest


def test_all_problems_reported_at_once_with_file_line_and_key(policies: Path) -> None:
    text = (policies / "tiers.yaml").read_text().replace("tier: human_signoff", "tier: human_sigoff", 1)
    (policies / "tiers.yaml").write_text(text)
    _edit(policies / "purposes.yaml",
          lambda d: d["purposes"]["ticket_routing"]["data_classes"].append("biometrics"))
    _edit(policies / "charter.yaml", lambda d: d["release"].update(cadence="whenever"))
    with pytest.raises(BundleInvalid) as info:
        load_bundle(policies)
    problems = [str(p) for p in info.value.problems]
    assert any("charter.yaml:" in p and "release.cadence" in p and "unallowed value" in p
               for p in problems), problems
    # Cross references only run once every file is individually valid.
    _edit(policies / "charter.yaml", lambda d: d["release"].update(cadence="weekly"))
    with pytest.raises(BundleInvalid) as info:
        load_bundle(policies)
    problems = [str(p) for p in info.value.problems]
    line = next(i for i, t in enumerate((policies / "tiers.yaml").read_text().splitlines(), 1)
                if "human_sigoff" in t)
    assert any(f"tiers.yaml:{line}" in p and "unknown tier 'human_sigoff'" in p for p in problems), problems
    assert any("purposes.yaml:" in p and "biometrics" in p for p in problems), problems


def test_personal_data_outside_residency_needs_a_safeguard(policies: Path) -> None:
    _edit(policies / "subprocessors.yaml",
          lambda d: d["subprocessors"]["labelling-vendor"].update(regions=["eu", "in"]))
    with pytest.raises(BundleInvalid, match=r"labelling-vendor.regions.*without a transfer_safeguard"):
        load_bundle(policies)


def test_no_personal_data_is_refused_on_a_dataset_with_a_personal_class(policies: Path) -> None:
    """`personal_data: false` lifts the purpose's storage limit, so it must be true: a dataset with
    ticket text cannot claim it (the golden suites, routing labels only, can)."""
    _edit(policies / "purposes.yaml",
          lambda d: d["datasets"]["tickets_scrubbed"].update(personal_data=False, retention_days=1825))
    with pytest.raises(BundleInvalid) as info:
        load_bundle(policies)
    problems = [str(p) for p in info.value.problems]
    assert any("/purposes.yaml:" in p and "datasets.tickets_scrubbed.personal_data" in p
               and "declared to hold no personal data, but its data classes ticket_text are personal" in p
               for p in problems), problems
    # the false claim is refused; it is not read as lifting the 365-day limit on ticket text
    assert len(problems) == 1, problems


def test_waiver_must_name_an_existing_gate(policies: Path) -> None:
    _edit(policies / "waivers.yaml", lambda d: d.update(waivers=[{
        "id": "W-1", "rule_id": "gate.stress.recall.min", "scope": {"model": "support-triage"},
        "owner": "ml-lead", "ticket": "GRC-1", "reason": "x", "expires": "2026-12-31"}]))
    with pytest.raises(BundleInvalid, match=r"no rule 'gate\.stress\.recall\.min'"):
        load_bundle(policies)


def test_missing_key_file_is_named(policies: Path) -> None:
    (policies / "keys" / "runtime.pub").unlink()
    with pytest.raises(BundleInvalid, match=r"identities.runtime.public_key.*does not exist"):
        load_bundle(policies)


def test_policy_check_cli_exits_2_on_invalid_bundle(policies: Path) -> None:
    _edit(policies / "gates.yaml", lambda d: d["eval"].update(vibes={"accuracy": {"min": 1}}))
    result = CliRunner().invoke(main, ["policy", "check", "--policies", str(policies)])
    assert result.exit_code == 2
    assert "gates.yaml" in result.output and "vibes" in result.output


def test_rego_that_does_not_compile_is_a_policy_error(policies: Path) -> None:
    (policies / "rego" / "promotion.rego").write_text(
        "package slmgate.promotion\nimport rego.v1\ndecision := {\n")
    with pytest.raises(PolicyError, match="does not compile"):
        CompiledPolicy(load_bundle(policies))


def test_policy_tests_pass_and_exercise_every_rule(world: World) -> None:
    bundle = load_bundle(world.policies)
    report = run_policy_tests(bundle, CompiledPolicy(bundle))
    assert len(report.results) >= 40 and report.ok, [r for r in report.results if not r.passed]
    assert report.unexercised == ()
    assert {"residency.region", "residency.subprocessor", "purpose.dataset", "rollback.plan",
            "approval.ml-lead", "gate.stress.accuracy.max_drop"} <= set(report.rules)
    assert any(r.file == "promotion_test.rego" for r in report.results)


def test_a_rule_no_test_makes_fail_is_reported(policies: Path) -> None:
    doc = yaml.safe_load((policies / "tests" / "promotion.yaml").read_text())
    doc["cases"] = [c for c in doc["cases"] if "rollback" not in c["name"]
                    and "without a rollback plan" not in c["name"]]
    (policies / "tests" / "promotion.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = CliRunner().invoke(main, ["policy", "check", "--policies", str(policies)])
    assert result.exit_code == 2
    assert "rollback.plan: no test makes this rule fail" in result.output


def test_v0_rego_is_refused_by_policy_check(policies: Path) -> None:
    (policies / "rego" / "legacy.rego").write_text("package legacy\nallow {\n  true\n}\n")
    result = CliRunner().invoke(main, ["policy", "check", "--policies", str(policies)])
    assert result.exit_code == 2
    assert "missing `import rego.v1`" in result.output and "legacy.rego:2" in result.output


def test_rego_unit_test_that_is_false_fails(policies: Path) -> None:
    test = policies / "rego" / "promotion_test.rego"
    test.write_text(test.read_text()
                    + '\ntest_deliberately_false if {\n\tpromotion.waivable("evidence.verified")\n}\n')
    bundle = load_bundle(policies)
    report = run_policy_tests(bundle, CompiledPolicy(bundle))
    assert [r.name for r in report.results if not r.passed] == ["test_deliberately_false"]


def test_junit_report_lists_each_test(world: World) -> None:
    result = CliRunner().invoke(main, ["policy", "test", "--policies", str(world.policies),
                                       "--format", "junit"])
    assert result.exit_code == 0
    from xml.etree import ElementTree
    root = ElementTree.fromstring(result.output.split("?>", 1)[1])
    suite = root.find("testsuite")
    assert root.tag == "testsuites" and suite is not None
    assert int(suite.get("failures", "1")) == 0
    assert len(suite.findall("testcase")) >= 40


def test_policy_test_fails_when_expectation_is_wrong(policies: Path) -> None:
    _edit(policies / "tests" / "promotion.yaml",
          lambda d: d["cases"][1]["expect"].update(outcome="approve"))
    runner = CliRunner()
    result = runner.invoke(main, ["policy", "test", "--policies", str(policies)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "expected 'approve', got 'deny'" in result.output


def test_policy_test_fails_when_policy_loosens(policies: Path) -> None:
    rego = policies / "rego" / "promotion.rego"
    source = rego.read_text()
    loosened = "[is_number(m.candidate), m.candidate >= limit] == [true, true]"
    assert loosened in source, "the minimum gate's comparison is not where this test loosens it"
    rego.write_text(source.replace(loosened, "true"))
    bundle = load_bundle(policies)
    failed = [r for r in run_policy_tests(bundle, CompiledPolicy(bundle)).results if not r.passed]
    assert any("stress regression" in r.name for r in failed)


def test_policy_show_tiers_prints_the_published_table(world: World) -> None:
    result = CliRunner().invoke(main, ["policy", "show", "tiers", "--policies", str(world.policies)])
    assert result.exit_code == 0
    assert "automated" in result.output and "privacy_review" in result.output
    assert "data_source_change" in result.output
