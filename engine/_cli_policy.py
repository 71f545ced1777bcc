"""`slmgate policy ...`: validate, test and show the bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import _decision as exits
from ._cli_common import FORMAT, POLICIES, emit, guarded


@click.group()
def policy() -> None:
    """Validate, test and show the policy bundle."""


@policy.command("check")
@POLICIES
@FORMAT
@guarded
def policy_check(policies: Path, fmt: str) -> None:
    """Validate every YAML file and compile the Rego; report all problems at once (exit 2)."""
    from ._bundle import load_bundle
    from ._policy import CompiledPolicy

    bundle = load_bundle(policies)
    CompiledPolicy(bundle)
    emit(fmt, {"ok": True, "digest": bundle.digest, "revision": bundle.revision},
          f"OK: {policies} is valid ({bundle.digest}, revision {bundle.revision or 'none'})")


@policy.command("test")
@POLICIES
@FORMAT
@guarded
def policy_test(policies: Path, fmt: str) -> None:
    """Run the policy test cases (tests/*.yaml) through the compiled decision entrypoint."""
    from ._bundle import load_bundle
    from ._policy import CompiledPolicy
    from ._policytest import run_policy_tests

    bundle = load_bundle(policies)
    results = run_policy_tests(bundle, CompiledPolicy(bundle))
    failed = [r for r in results if not r.passed]
    lines = [f"{'PASS' if r.passed else 'FAIL'}: {r.file}: {r.name}"
             + "".join(f"\n    {p}" for p in r.problems) for r in results]
    lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    emit(fmt, [r.__dict__ for r in results], "\n".join(lines))
    if failed:
        sys.exit(exits.EXIT_DENIED)


@policy.command("show")
@click.argument("what", type=click.Choice(["tiers", "gates", "charter", "purposes", "subprocessors",
                                           "waivers"]))
@POLICIES
@FORMAT
@guarded
def policy_show(what: str, policies: Path, fmt: str) -> None:
    """Print one part of the bundle; `tiers` is the published approval-tier table."""
    from ._bundle import load_bundle

    data = load_bundle(policies).data[what]
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


