"""`slmgate policy ...`: validate, test and show the bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slmgate.engine.cli._common import FORMAT, POLICIES, emit, exit_code_for, guarded
from slmgate.engine.policy import _decision as exits
from slmgate.evidence.errors import InputError

if TYPE_CHECKING:
    from slmgate.engine.policy._bundle import Problem


@click.group()
def policy() -> None:
    """Validate, test and show the policy bundle."""


@policy.command("check")
@POLICIES
@FORMAT
@guarded
def policy_check(policies: Path, fmt: str) -> None:
    """Validate every YAML file (cerberus, cross-references, file:line:key errors; imports.yaml
    maps only to gates of gates.yaml), lint and compile the Rego, and run the policy tests:
    every test passes and every rule is made to fail by at least one test. All problems at
    once; exit 2."""
    from slmgate.engine.policy._bundle import BundleInvalid, Problem, load_bundle
    from slmgate.engine.policy._engines import embedded_engine
    from slmgate.engine.policy._policytest import run_policy_tests

    if (policies / "trust.yaml").is_file() and not (policies / "keys").exists():
        # the shipped template (what `slmgate init` copies) has no keys until init makes them
        raise InputError("this is a policy template without keys: trust.yaml names public keys "
                         "that `slmgate init` generates", file=str(policies),
                         advice=f"run `slmgate init my-policies` and then `slmgate policy check "
                                f"--policies my-policies`; `slmgate policy test --policies "
                                f"{policies}` runs the tests without keys")
    bundle = load_bundle(policies)
    report = run_policy_tests(bundle, embedded_engine(bundle))
    problems = [Problem(r.file, r.name, "; ".join(r.problems)) for r in report.results if not r.passed]
    problems += [Problem(str(policies / "tests"), rule, "no test makes this rule fail")
                 for rule in report.unexercised]
    problems += _metric_map_problems(policies / "imports.yaml", bundle.data["gates"])
    if problems:
        raise BundleInvalid(problems)
    emit(fmt, {"ok": True, "digest": bundle.digest, "revision": bundle.revision},
          f"OK: {policies} is valid ({bundle.digest}, revision {bundle.revision or 'none'})")


def _metric_map_problems(path: Path, gates: dict[str, Any]) -> list[Problem]:
    """imports.yaml, when the repository has one: well formed, and every target a gate of
    gates.yaml (a metric mapped to no gate would decide nothing)."""
    from slmgate.engine.policy._bundle import Problem
    from slmgate.runtime._importers import load_metric_maps

    if not path.is_file():
        return []
    try:
        maps = load_metric_maps(path)
    except InputError as exc:
        return [Problem(str(path), exc.field or "imports", exc.message)]
    return [Problem(str(path), f"{source}.{key}", f"{layer}.{name} is not a gate of gates.yaml "
                    f"(eval.{layer} has {', '.join(sorted(gates['eval'].get(layer, {}))) or 'none'})")
            for source, mapping in maps.items() for key, (layer, name) in mapping.items()
            if name not in gates["eval"].get(layer, {})]


@policy.command("test")
@POLICIES
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text",
              show_default=True,
              help="junit: one testcase per policy test, for CI systems (the dialect of Jenkins' "
                   "junit-10.xsd); json and junit print a report on exit 2 too.")
@guarded
def policy_test(policies: Path, fmt: str) -> None:
    """Run the bundle's tests: decision cases (tests/*.yaml) through the compiled entrypoint and
    `test_*` rules of rego/*_test.rego; list the rules no test makes fail. Exit 1 on any failure,
    2 when the bundle cannot be read."""
    try:
        _policy_test(policies, fmt)
    except Exception as exc:  # the report CI reads, then the usual message and exit code
        from slmgate.engine.cli._report import error_report

        report = error_report(fmt, exc, exit_code_for(exc), command="policy test")
        if report is not None:
            click.echo(report)
        raise


def _policy_test(policies: Path, fmt: str) -> None:
    from slmgate.engine.policy._bundle import load_bundle
    from slmgate.engine.policy._engines import embedded_engine
    from slmgate.engine.policy._policytest import run_policy_tests

    bundle = load_bundle(policies, with_keys=False)
    report = run_policy_tests(bundle, embedded_engine(bundle))
    failed = [r for r in report.results if not r.passed]
    if fmt == "junit":
        click.echo(report.junit())
    else:
        lines = [f"{'PASS' if r.passed else 'FAIL'}: {r.file}: {r.name}"
                 + "".join(f"\n    {p}" for p in r.problems) for r in report.results]
        if report.unexercised:
            lines.append(f"rules no test makes fail ({len(report.unexercised)}): "
                         + ", ".join(report.unexercised))
        lines.append(f"{len(report.results) - len(failed)} passed, {len(failed)} failed")
        emit(fmt, {"results": [r.__dict__ for r in report.results], "rules": report.rules,
                   "unexercised": report.unexercised}, "\n".join(lines))
    if not report.ok:
        sys.exit(exits.EXIT_DENIED)


@policy.command("show")
@click.argument("what", type=click.Choice(["tiers", "gates", "charter", "purposes", "subprocessors",
                                           "waivers"]))
@POLICIES
@FORMAT
@guarded
def policy_show(what: str, policies: Path, fmt: str) -> None:
    """Print one part of the bundle; `tiers` is the published approval-tier table."""
    from slmgate.engine.policy._bundle import load_bundle

    data = load_bundle(policies, with_keys=False).data[what]
    if fmt == "json" or what != "tiers":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    tiers = data["tiers"]
    click.echo("Approval tiers (a change takes the heaviest tier of its change classes)\n")
    for name, t in sorted(tiers.items(), key=lambda kv: kv[1]["rank"]):
        approvals = ", ".join(f"{a['count']}× {a['role']}" for a in t["approvals"])
        approvals = approvals or "none (CAB pre-approved)"
        click.echo(f"{name}: {t['description']}\n  evidence:  {', '.join(t['requires_evidence'])}"
                   f"\n  approvals: {approvals}")
        classes = [c for c, v in data["change_classes"].items() if v["tier"] == name]
        click.echo(f"  changes:   {', '.join(classes) or '—'}\n")


