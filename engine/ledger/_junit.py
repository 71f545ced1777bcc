"""JUnit XML for one decision, for CI systems: a test case per check the policy ran and per
evidence envelope verified; failed checks, blocking findings outside the checks and refused
evidence are failures. A policy that could not be evaluated is an error.

Written with the standard library's ElementTree rather than a JUnit package (``junit-xml``,
``junitparser``): the format is one ``testsuite`` of ``testcase`` elements, ElementTree already
escapes and serialises it, and a package would be a dependency for ~80 lines that never change
(the review for issue 17; no speed is at stake here, one document per decision)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def decision_junit(decision: dict[str, Any]) -> str:
    """``decision`` is ``Decision.to_json()`` (or the decision inside a ledger record)."""
    model = (decision.get("request") or {}).get("model") or {}
    suite_name = f"slmgate promote {model.get('name')} {model.get('version')}"
    severity = {f["rule_id"]: f for f in decision.get("findings") or []}
    cases: list[ET.Element] = []

    def case(classname: str, name: str, failure: tuple[str, str, str] | None) -> None:
        el = ET.Element("testcase", classname=classname, name=name, time="0")
        if failure and failure[0] == "review":  # waits for people: not a red build by itself
            ET.SubElement(el, "skipped", message=f"human review required: {failure[1]}").text = failure[2]
        elif failure:
            kind, message, body = failure
            ET.SubElement(el, "failure", message=message, type=kind).text = body
        cases.append(el)

    for e in decision.get("evidence") or []:
        refused = None if e.get("verified") else (
            "refused", f"{e.get('failed_step')}: {e.get('reason')}",
            f"envelope {e.get('ref')} sha256:{e.get('envelope_sha256')} refused at step "
            f"{e.get('failed_step')}: {e.get('reason')}")
        case("slmgate.evidence", str(e.get("ref")), refused)
    checked = set()
    for c in decision.get("checks") or []:
        checked.add(c["rule_id"])
        finding = severity.get(c["rule_id"], {})
        failed = None if c.get("passed") else (
            str(finding.get("severity", "deny")), str(c.get("message", "")),
            f"{c['rule_id']} ({c.get('evidence_ref')}): {finding.get('message') or c.get('message')}")
        case("slmgate.policy", c["rule_id"], failed)
    for f in decision.get("findings") or []:
        if f["rule_id"] not in checked and f.get("severity") in ("deny", "review"):
            case("slmgate.policy", f["rule_id"],
                 (str(f["severity"]), str(f.get("message", "")),
                  f"{f['rule_id']} ({f.get('evidence_ref')}): {f.get('message')}"))

    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    errors = 1 if decision.get("error") else 0
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(cases) + errors),
                       failures=str(failures), errors=str(errors), skipped=str(skipped), time="0",
                       timestamp=str(decision.get("evaluated_at", "")).removesuffix("Z"))
    props = ET.SubElement(suite, "properties")
    for name in ("id", "outcome", "exit_code", "tier", "bundle_digest", "policy_revision", "summary"):
        ET.SubElement(props, "property", name=f"slmgate.{name}", value=str(decision.get(name)))
    suite.extend(cases)
    if errors:
        el = ET.SubElement(suite, "testcase", classname="slmgate.policy", name="policy.evaluation",
                           time="0")
        ET.SubElement(el, "error", message=str(decision["error"]), type="policy-error").text = str(
            decision["error"])
    for a in decision.get("approvals_needed") or []:
        ET.SubElement(props, "property", name=f"slmgate.approval_needed.{a.get('role')}",
                      value=str(a.get("count")))
    return _document(suite, failures, errors)


def _document(suite: ET.Element, failures: int, errors: int) -> str:
    # junit-10.xsd: testsuites carries no skipped count (its testsuite does)
    root = ET.Element("testsuites", name="slmgate", tests=suite.get("tests", "0"),
                      failures=str(failures), errors=str(errors), time="0")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def error_junit(command: str, message: str, *, kind: str, file: str | None = None,
                field: str | None = None) -> str:
    """A JUnit report for a run that decided nothing (bad input, exit 2; could not verify or
    evaluate, exit 4): one failed test case naming the file and the field."""
    suite = ET.Element("testsuite", name=f"slmgate {command}", tests="1", failures="1",
                       errors="0", skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    for name, value in (("file", file), ("field", field)):
        if value:
            ET.SubElement(props, "property", name=f"slmgate.{name}", value=value)
    el = ET.SubElement(suite, "testcase", classname=f"slmgate.{kind}",
                       name=f"{file or command}{': ' + field if field else ''}", time="0")
    ET.SubElement(el, "failure", message=message, type=kind).text = message
    return _document(suite, 1, 0)
