"""What a reader of the packet sees, read back as text from the four demo outcomes (approve,
deny, review, tampered): no raw JSON, no float noise, no placeholders; wording that fits the
outcome; each attached file listed once in the catalog's /AF array."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request
from slmgate.engine.packet._chart import layer_chart
from slmgate.engine.packet._content import packet_attachments, packet_content
from slmgate.engine.packet._render import render_packet
from slmgate.engine.packet._wording import reader_text
from slmgate.engine.promote import sign_decision_record
from slmgate.evidence import canonical_json
from tests.conftest import World
from tests.engine.packet.test_packet_verify import AT

OUTCOMES = ("approve", "deny", "review", "tampered")
# What must never reach a reader: raw JSON containers, binary float noise, template leftovers.
RAW = {
    "empty list": re.compile(r"\[\s*\]"),
    "empty object": re.compile(r"\{\s*\}"),
    "JSON list": re.compile(r"\[\s*\""),
    "float noise": re.compile(r"\d\.\d*(?:0{5,}|9{5,})\d"),
    "placeholder": re.compile(r"\{\{|\}\}|\{%|%\}|\bNone\b(?! —)|\bnull\b|\bundefined\b|TODO|XXX"),
}


def _tampered(evidence: dict[str, bytes]) -> dict[str, bytes]:
    env = json.loads(evidence["eval-result"])
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = 0.99
    env["payload"] = base64.b64encode(canonical_json(statement)).decode()
    return {**evidence, "eval-result": json.dumps(env).encode()}


def _request(world: World, folder: Path, outcome: str) -> Path:
    if outcome == "approve":
        return world.request(folder, world.standard_evidence())
    if outcome == "deny":
        return world.request(folder, world.standard_evidence(stress_accuracy=0.70))
    if outcome == "tampered":
        return world.request(folder, _tampered(world.standard_evidence()))
    return world.review_request(folder)  # a serving change the ml-lead alone signed off


@pytest.fixture(scope="module")
def packets(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    bundle = load_bundle(session_world.policies)
    policy = CompiledPolicy(bundle)
    out = {}
    for outcome in OUTCOMES:
        folder = tmp_path_factory.mktemp(outcome)
        request = load_request(_request(session_world, folder / "req", outcome))
        result = evaluate_promotion(request, bundle, policy, now=AT)
        record = sign_decision_record(result.decision, session_world.key("slmgate-gate"))
        content = packet_content(result.decision, result.facts, bundle, result.verified)
        pdf = folder / "packet.pdf"
        render_packet(content, packet_attachments(request, record, result.decision, bundle), pdf)
        out[outcome] = pdf
    return out


def _text(pdf: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_no_raw_output_reaches_a_reader(packets: dict[str, Path], outcome: str) -> None:
    text = _text(packets[outcome])
    found = {what: sorted(set(p.findall(text)))[:5] for what, p in RAW.items() if p.search(text)}
    assert not found, f"{outcome} packet shows raw output: {found}"


def test_the_four_packets_have_the_outcomes_they_are_named_for(packets: dict[str, Path]) -> None:
    covers = {o: PdfReader(p).pages[0].extract_text() for o, p in packets.items()}
    assert "APPROVE" in covers["approve"]
    assert "DENY" in covers["deny"] and "DENY" in covers["tampered"]
    assert "REVIEW" in covers["review"]
    assert "Refused evidence" in covers["tampered"]


def test_wording_fits_the_outcome(packets: dict[str, Path]) -> None:
    for outcome in ("deny", "tampered"):
        text = _text(packets[outcome])
        assert "No further approval is required" not in text, outcome
        assert "no approval overrides a denial" in text, outcome
    assert "No further approval is required" in _text(packets["approve"])


def test_a_missing_approval_names_the_missing_role_not_another_envelope(
        packets: dict[str, Path]) -> None:
    text = " ".join(_text(packets["review"]).replace("\u2010\n", "").split())
    row = text[text.index("approval.release-manager", text.index("Checks")):]
    row = row[:row.index("approval.release-manager") + 200]
    assert "no signed release-manager approval was submitted" in row, row
    assert "approval-ml-lead" not in row.split("has 0")[1][:60], row


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_attached_file_is_listed_once_in_the_catalog_af(packets: dict[str, Path],
                                                             outcome: str) -> None:
    with pikepdf.open(packets[outcome]) as pdf:
        listed = [f.objgen for f in pdf.Root.AF]
        assert len(listed) == len(set(listed)) == len(pdf.attachments), (len(listed), len(pdf.attachments))
        assert all(f.AFRelationship == pikepdf.Name.Source for f in pdf.Root.AF)
        assert str(pdf.open_metadata().get("pdfaid:part")) == "3"


def test_reader_text_words_json_and_rounds_noise() -> None:
    assert reader_text("0 envelope(s) refused []") == "0 envelope(s) refused none"
    assert reader_text('name it ["support-triage"]') == "name it support-triage"
    assert reader_text('says [["a", "2026-07-31"], ["b", "2026-08-01"]]') == \
        "says (a, 2026-07-31), (b, 2026-08-01)"
    assert reader_text("serving configuration: {}") == "serving configuration: none"
    assert reader_text("drop -0.009678000000000001, at most 0.02") == "drop -0.009678, at most 0.02"
    assert reader_text("moved 0.9975000000000001 -> 0.99") == "moved 0.9975 -> 0.99"
    assert reader_text("a [bracket] stays") == "a [bracket] stays"
    assert reader_text(None) is None


def test_a_metric_of_zero_draws_a_visible_bar_and_gate_labels_stay_off_the_bars() -> None:
    svg = layer_chart([{"metric": "false_escalation_rate", "baseline": 0.0, "candidate": 0.0,
                        "passed": True, "bounds": {"max": 0.1}}])
    widths = [float(w) for w in re.findall(r'<rect x="2" y="[\d.]+" width="([\d.]+)" height="6" '
                                            r'fill="#(?!f0f4f8)', svg)]
    assert len(widths) == 2 and all(w >= 1 for w in widths), widths
    labels = re.findall(r'<text x="([\d.]+)"[^>]*class="g">([^<]*)</text>', svg)
    assert labels == [("123", "gate max 0.1")], labels
    assert float(labels[0][0]) > 2 + 118  # right of every bar and every bound marker
