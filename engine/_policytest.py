"""`slmgate policy test`: table-driven policy tests run through the compiled entrypoint.

Each case in ``tests/*.yaml`` patches a base set of facts (``set`` by JSON-pointer path,
``remove`` paths), evaluates the very entrypoint `slmgate promote` queries and compares the
outcome, tier, blocking findings, info findings and approvals still needed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmgate.evidence.errors import InputError, PolicyError

from ._bundle import PolicyBundle
from ._decision import checked_policy_output
from ._policy import CompiledPolicy
from ._yamldoc import load_yaml


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    problems: tuple[str, ...]


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
    return problems


def run_policy_tests(bundle: PolicyBundle, policy: CompiledPolicy) -> list[CaseResult]:
    if not bundle.tests:
        raise InputError("no policy tests found", file=str(bundle.root / "tests"),
                         advice="add tests/*.yaml with base facts and cases")
    results = []
    for name, path in bundle.tests.items():
        doc = load_yaml(Path(path)).data
        if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
            raise InputError("expected a mapping with 'base' and a list of 'cases'", file=path)
        for i, case in enumerate(doc["cases"]):
            if not isinstance(case, dict) or "name" not in case or "expect" not in case:
                raise InputError("each case needs 'name' and 'expect'", file=path, field=f"cases.{i}")
            facts = _apply(doc.get("base", {}), case, path)
            try:
                decision = checked_policy_output(policy.evaluate(facts))
                problems = _compare(decision, case["expect"])
            except PolicyError as exc:
                problems = [f"policy error: {exc.message}"]
            results.append(CaseResult(name, case["name"], not problems, tuple(problems)))
    return results
