"""Validation of JUnit XML against tests/assets/junit-10.xsd (the dialect of Jenkins' xUnit
plugin, which CI systems read) with a real XSD validator."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

XSD = Path(__file__).parent / "assets" / "junit-10.xsd"
_SCHEMA = etree.XMLSchema(etree.parse(str(XSD)))


def junit_problems(text: str) -> list[str]:
    """The schema's complaints about ``text`` (empty when it validates)."""
    document = etree.fromstring(text.encode())
    if _SCHEMA.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in _SCHEMA.error_log]


def assert_valid_junit(text: str) -> None:
    problems = junit_problems(text)
    assert not problems, "JUnit XML does not validate against junit-10.xsd:\n" + "\n".join(problems)
