"""`slmgate policy test`: the bundle's tests, run by the embedded engine.

Two kinds, both in the policy repository:

- ``tests/*.yaml`` — decision cases: each patches a base set of facts (``set`` by JSON-pointer
  path, ``remove`` paths), evaluates the very entrypoint `slmgate promote` queries and compares
  the outcome, tier, blocking and info findings, approvals still needed and waivers;
- ``rego/*_test.rego`` — ``test_*`` rules over the policy's helper functions; a rule passes only
  when it evaluates to ``true`` (false, undefined and errors all fail).

Coverage: a rule counts as exercised when some decision case makes it fail. Rule ids group into
rules by family (``approval.ml-lead`` → ``approval``, ``residency.region.us`` →
``residency.region``); each gate and SLO in gates.yaml is a rule of its own.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._decision import checked_policy_output
from slmgate.engine.policy._embedded import _first_line, _regopy, compile_bundle
from slmgate.engine.policy._evaluate import DecisionEngine
from slmgate.engine.policy._yamldoc import load_yaml
from slmgate.evidence.errors import InputError, PolicyError

_FAMILY_DEPTH = {"gate": None, "slo": None}


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    problems: tuple[str, ...]
    seconds: float = 0.0  # how long the case took to run


@dataclass(frozen=True)
class TestReport:
    results: tuple[CaseResult, ...]
    rules: tuple[str, ...]  # every rule some case checked
    unexercised: tuple[str, ...]  # rules no case made fail

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results) and not self.unexercised

    def junit(self) -> str:
        """JUnit XML in the dialect of Jenkins' junit-10.xsd: a ``testsuites`` root holding one
        ``testsuite`` (``tests``, ``failures``, ``errors``, ``skipped`` and ``time`` counted), a
        ``testcase`` per policy test with its own time, and one for rule coverage."""
        failures = sum(not r.passed for r in self.results) + bool(self.unexercised)
        tests = len(self.results) + bool(self.unexercised)
        total = f"{sum(r.seconds for r in self.results):.6f}"
        suite = ElementTree.Element("testsuite", name="slmgate policy", tests=str(tests),
                                    failures=str(failures), errors="0", skipped="0", time=total)
        for r in self.results:
            case = ElementTree.SubElement(suite, "testcase", classname=r.file, name=r.name,
                                          time=f"{r.seconds:.6f}")
            if not r.passed:
                failure = ElementTree.SubElement(case, "failure", type="policy-test",
                                                 message=r.problems[0] if r.problems else "")
                failure.text = "\n".join(r.problems)
        if self.unexercised:
            case = ElementTree.SubElement(suite, "testcase", classname="coverage",
                                          name="every rule exercised", time="0.000000")
            ElementTree.SubElement(case, "failure", type="coverage",
                                   message="rules no test makes fail").text = \
                "\n".join(self.unexercised)
        root = ElementTree.Element("testsuites", name="slmgate policy", tests=str(tests),
                                   failures=str(failures), errors="0", time=total)
        root.append(suite)
        ElementTree.indent(root)
        return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def rule_family(rule_id: str) -> str:
    parts = rule_id.split(".")
    if parts[0] in _FAMILY_DEPTH:
        return rule_id
    return ".".join(parts[:2])


def _pointer(path: str, source: str) -> list[str]:
    if not path.startswith("/"):
        raise InputError(f"path {path!r} must start with '/'", file=source)
    return path[1:].split("/")


def _apply(doc: dict[str, Any], case: dict[str, Any], source: str) -> dict[str, Any]:
    facts = copy.deepcopy(doc)
    for path, value in (case.get("set") or {}).items():
        *parents, last = _pointer(path, source)
        node = facts
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
    for path in case.get("remove") or []:
        *parents, last = _pointer(path, source)
        node = facts
        for part in parents:
            node = node[part]
        node.pop(last, None)
    return facts


def _compare(decision: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("outcome", "tier"):
        if key in expect and decision[key] != expect[key]:
            problems.append(f"{key}: expected {expect[key]!r}, got {decision[key]!r}")
    blocking = {f["rule_id"] for f in decision["findings"] if f["severity"] in ("deny", "review")}
    info = {f["rule_id"] for f in decision["findings"] if f["severity"] == "info"}
    if "findings" in expect:
        wanted = set(expect["findings"])
        if not wanted and blocking:
            problems.append(f"findings: expected none, got {sorted(blocking)}")
        elif wanted - blocking:
            problems.append(f"findings: missing {sorted(wanted - blocking)}, got {sorted(blocking)}")
    if "info" in expect and set(expect["info"]) - info:
        problems.append(f"info findings: missing {sorted(set(expect['info']) - info)}")
    if "approvals_needed" in expect:
        roles = {a["role"] for a in decision["approvals_needed"]}
        if roles != set(expect["approvals_needed"]):
            problems.append(f"approvals_needed: expected {sorted(expect['approvals_needed'])}, "
                            f"got {sorted(roles)}")
    for key in ("waivers_applied", "waivers_expired"):
        if key in expect:
            ids = sorted(w["id"] for w in decision[key])
            if ids != sorted(expect[key]):
                problems.append(f"{key}: expected {sorted(expect[key])}, got {ids}")
    return problems


def _decision_cases(
    bundle: PolicyBundle, policy: DecisionEngine
) -> tuple[list[CaseResult], set[str], set[str]]:
    results: list[CaseResult] = []
    checked: set[str] = set()
    failed: set[str] = set()
    for name, path in bundle.tests.items():
        doc = load_yaml(Path(path)).data
        if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
            raise InputError("expected a mapping with 'base' and a list of 'cases'", file=path)
        for i, case in enumerate(doc["cases"]):
            if not isinstance(case, dict) or "name" not in case or "expect" not in case:
                raise InputError("each case needs 'name' and 'expect'", file=path, field=f"cases.{i}")
            facts = _apply(doc.get("base", {}), case, path)
            started = time.perf_counter()
            try:
                decision = checked_policy_output(policy.evaluate(facts))
                problems = _compare(decision, case["expect"])
                checked |= {rule_family(c["rule_id"]) for c in decision["checks"]}
                failed |= {rule_family(f["rule_id"]) for f in decision["findings"]}
            except PolicyError as exc:
                problems = [f"policy error: {exc.message}"]
            results.append(CaseResult(name, case["name"], not problems, tuple(problems),
                                      time.perf_counter() - started))
    return results, checked, failed


def _rego_tests(bundle: PolicyBundle) -> list[CaseResult]:
    rego = _regopy()
    targets: list[tuple[str, str, str]] = []  # file, rule, entrypoint
    for name, source in bundle.rego_modules.items():
        if not name.endswith("_test.rego"):
            continue
        package = re.search(r"^package\s+([\w.]+)", source, re.M)
        if not package:
            raise InputError("no package declaration", file=str(bundle.root / "rego" / name))
        prefix = package.group(1).replace(".", "/")
        targets += [(name, rule, f"{prefix}/{rule}")
                    for rule in re.findall(r"^(test_\w+)\s+if\b", source, re.M)]
    if not targets:
        return []
    compiled = compile_bundle(bundle, [t[2] for t in targets], what="the policy tests")
    results = []
    for file, rule, entrypoint in targets:
        started = time.perf_counter()
        runner = rego.Interpreter()
        runner.strict_built_in_errors = True
        try:
            output = runner.query_bundle_entrypoint(compiled, entrypoint)
            text = str(output)
            ok = output.ok() and text.strip() != "undefined" and json.loads(text)["expressions"] == [True]
            problem = "" if ok else f"{rule} is {text.strip() or 'undefined'}, expected true"
        except (rego.RegoError, ValueError, KeyError) as exc:
            ok, problem = False, f"{rule} raised {_first_line(exc)}"
        results.append(CaseResult(file, rule, ok, (problem,) if problem else (),
                                  time.perf_counter() - started))
    return results


def run_policy_tests(bundle: PolicyBundle, policy: DecisionEngine) -> TestReport:
    if not bundle.tests:
        raise InputError("no policy tests found", file=str(bundle.root / "tests"),
                         advice="add tests/*.yaml with base facts and cases")
    results, checked, failed = _decision_cases(bundle, policy)
    results += _rego_tests(bundle)
    checked.discard("policy.complete")  # it fails only when the policy itself is broken
    return TestReport(tuple(results), tuple(sorted(checked)), tuple(sorted(checked - failed)))
