"""Tests for the auditor packet renderer (slmgate.engine.packet._render)."""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from pypdf import PdfReader

from slmgate.engine.packet._render import Attachment, PacketError, TemplateFetcher, render_packet
from slmgate.engine.packet._view import packet_view

DIGEST = "sha256:" + "ab12" * 16


def sample_content(outcome: str = "approve") -> dict[str, Any]:
    findings: list[dict[str, Any]] = [
        {
            "rule_id": "gate.stress.latency_p95",
            "severity": "info",
            "message": "p95 latency 0.55 ms within the 5 ms SLO",
            "evidence_ref": "serving-config",
        }
    ]
    if outcome == "deny":
        findings.insert(
            0,
            {
                "rule_id": "gate.stress.accuracy",
                "severity": "deny",
                "message": "stress accuracy 0.71 < 0.80",
                "evidence_ref": "eval-result",
            },
        )
    return {
        "title": "Promotion packet — support-triage 1.1.0",
        "generated_at": "2026-11-27T19:40:00Z",
        "decision": {
            "id": "dec-2f9a0c1e",
            "outcome": outcome,
            "exit_code": {"approve": 0, "deny": 1, "review": 3}[outcome],
            "tier": "automated",
            "summary": "All 9 required checks passed; automated tier pre-approved by the CAB.",
            "evaluated_at": "2026-11-27T19:40:00Z",
            "bundle_digest": DIGEST,
            "policy_revision": "a1b2c3d",
            "findings": findings,
            "checks": [
                {
                    "rule_id": "gate.regression.accuracy",
                    "passed": True,
                    "message": "accuracy 0.951 ≥ 0.90",
                },
                {"rule_id": "evidence.fresh", "passed": True, "message": "all evidence < 7 days"},
            ],
            "approvals_needed": [{"role": "ml-lead", "count": 1}],
            "waivers_applied": [
                {
                    "id": "W-12",
                    "rule_id": "gate.policy.refusal_rate",
                    "owner": "jane.doe",
                    "ticket": "RISK-88",
                    "expires": "2026-12-31",
                }
            ],
            "waivers_expired": [],
        },
        "request": {
            "id": "req-77",
            "summary": "Weekly retrain on October tickets",
            "requested_by": "ci@support-ml",
            "model": {"name": "support-triage", "version": "1.1.0", "weights_digest": DIGEST},
            "baseline": {"name": "support-triage", "version": "1.0.0", "weights_digest": DIGEST},
            "change_classes": ["weights_retrain"],
        },
        "metrics": [
            {
                "layer": "regression",
                "metric": "accuracy",
                "baseline": 0.90,
                "candidate": 0.95,
                "delta": 0.05,
                "gate": "≥ 0.90; drop ≤ 0.02",
                "passed": True,
            }
        ],
        "evidence": [
            {
                "ref": "eval-result",
                "predicate_type": "https://slmgate.dev/eval-result/v0.1",
                "signers": ["eval-harness (service)"],
                "signed_at": "2026-11-27T18:00:00Z",
                "verified": True,
                "failure": None,
                "subject_digest": DIGEST,
                "file": "evidence/eval-result.dsse.json",
            }
        ],
        "training": {
            "run": {"builder": "https://ci.example.com/trainer", "build_type": "ticket-classifier",
                    "signers": "trainer", "base_model": None},
            "datasets": [
                {"dataset": "typo_augmented_tickets", "depth": 0, "digest": DIGEST,
                 "category": "derivative", "origin": "tickets_scrubbed", "purpose": "model_improvement",
                 "lawful_basis": "legitimate_interests", "oldest_record": "2026-06-01",
                 "newest_record": "2026-11-01", "rows": 2000, "access_role": "ml-engineering",
                 "retention_days": 365, "signers": "data-owner", "carded": True},
                {"dataset": "tickets_scrubbed", "depth": 1, "digest": DIGEST, "category": "customer_provided",
                 "origin": "support desk", "purpose": "model_improvement",
                 "lawful_basis": "legitimate_interests", "oldest_record": "2026-06-01",
                 "newest_record": "2026-11-01", "rows": 2000, "access_role": "ml-engineering",
                 "retention_days": 365, "signers": "data-owner", "carded": True},
            ],
        },
        "serving": {
            "device": "cpu / Intel Xeon",
            "dtype": "float32",
            "torch_version": "2.13.0+cpu",
            "batch_size": 8,
            "latency_ms_p50": 0.41,
            "latency_ms_p95": 0.55,
            "throughput_per_s": 19000.0,
        },
        "charter": {
            "program": "Support-ticket triage",
            "problem_statement": "Route incoming tickets to the right queue.",
            "owner": "support-ops",
        },
    }


def sample_attachments() -> list[Attachment]:
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}
    return [
        Attachment(
            name="evidence/eval-result.dsse.json",
            data=json.dumps(envelope).encode(),
            description="eval result, DSSE envelope",
        ),
        Attachment(
            name="decision.json",
            data=b'{"outcome": "approve"}',
            description="decision record",
        ),
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packet") / "packet.pdf"
    render_packet(sample_content(), sample_attachments(), out)
    return out


def _text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_renders_pdf_with_decision_content(rendered: Path) -> None:
    assert rendered.read_bytes().startswith(b"%PDF")
    assert rendered.stat().st_mode & 0o777 == 0o644
    text = _text(rendered)
    for expected in ("APPROVE", "1.1.0", "gate.stress.latency_p95", "accuracy", "page 1 of"):
        assert expected in text


def test_training_data_section_shows_each_dataset_and_its_sources(rendered: Path) -> None:
    text = _text(rendered)
    for expected in ("typo_augmented_tickets", "↳", "tickets_scrubbed", "customer_provided",
                     "derivative", "legitimate_interests", "retention 365 days", "data-owner"):
        assert expected in text, expected


def test_bookmarks_follow_sections(rendered: Path) -> None:
    top, sections = PdfReader(rendered).outline
    assert not isinstance(top, list) and isinstance(sections, list)
    assert str(top.title).startswith("Promotion packet")
    assert [item.title for item in sections if not isinstance(item, list)] == [
        "Release diff",
        "Findings and checks",
        "Evidence",
        "Approvals",
        "Serving configuration",
        "Training data",
        "Records of processing",
        "Control mapping",
        "Attached files and re-verification",
    ]
    assert not any(isinstance(item, list) for item in sections)  # h3 are not bookmarks


def test_release_diff_is_one_page_with_a_chart_per_layer(rendered: Path) -> None:
    pages = [page.extract_text() for page in PdfReader(rendered).pages]
    diff = [i for i, text in enumerate(pages) if "Release diff" in text and "Metrics moved" in text]
    assert diff == [1]
    assert "Accepted risks" in pages[1] and "jane.doe" in pages[1]
    assert "Findings and checks" in pages[2].splitlines()[:4]  # the next page starts the next section
    view = packet_view(sample_content())
    assert [c["layer"] for c in view["charts"]] == ["regression"]
    svg = str(view["charts"][0]["svg"])
    assert svg.startswith("<svg") and "<script" not in svg and "http:" not in svg.replace(
        "http://www.w3.org/2000/svg", "")
    assert 'fill="#1e7b34"' in svg  # the candidate bar of a passed gate


def test_every_page_has_running_headers_and_page_n_of_m(rendered: Path) -> None:
    pages = PdfReader(rendered).pages
    for n, page in enumerate(pages, 1):
        text = page.extract_text()
        assert "decision dec-2f9a0c1e" in text and "support-triage 1.1.0" in text
        assert f"page {n} of {len(pages)}" in text


def test_attachments_are_embedded_byte_for_byte(rendered: Path) -> None:
    embedded = PdfReader(rendered).attachments
    for attachment in sample_attachments():
        assert embedded[attachment.name] == [attachment.data]


def test_attachments_are_associated_files_with_source_relationship(rendered: Path) -> None:
    with pikepdf.open(rendered) as pdf:
        associated = pdf.Root.AF
        names = {str(spec.UF) for spec in associated}
        assert names == {a.name for a in sample_attachments()}
        assert all(spec.AFRelationship == pikepdf.Name.Source for spec in associated)
        subtypes = {str(spec.EF.F.Subtype) for spec in associated}
        assert subtypes == {"/application/json"}


def test_pdfa_3b_identification_in_xmp(rendered: Path) -> None:
    with pikepdf.open(rendered) as pdf:
        meta = pdf.open_metadata()
        assert meta["pdfaid:part"] == "3"
        assert meta["pdfaid:conformance"] == "B"
        assert meta["xmp:CreateDate"] == "2026-11-27T19:40:00Z"
        assert str(pdf.docinfo["/CreationDate"]) == "D:20261127194000Z"


def test_same_input_gives_identical_bytes_when_the_clock_moves(
    rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fontTools stamps font subsets with time.time() unless SOURCE_DATE_EPOCH pins it.
    later = time.time() + 400 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    again = tmp_path / "again.pdf"
    render_packet(sample_content(), list(reversed(sample_attachments())), again)
    assert again.read_bytes() == rendered.read_bytes()
    assert "SOURCE_DATE_EPOCH" not in os.environ


def test_same_input_gives_identical_bytes_in_another_process(
    rendered: Path, tmp_path: Path
) -> None:
    out = tmp_path / "other.pdf"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_packet import sample_attachments, sample_content
        from slmgate.engine.packet._render import render_packet
        render_packet(sample_content(), sample_attachments(), Path({str(out)!r}))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    env.pop("SOURCE_DATE_EPOCH", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    assert out.read_bytes() == rendered.read_bytes()


def test_deny_renders_its_findings(tmp_path: Path) -> None:
    out = tmp_path / "deny.pdf"
    render_packet(sample_content("deny"), sample_attachments(), out)
    text = _text(out)
    assert "DENY" in text
    assert "gate.stress.accuracy" in text
    assert "stress accuracy 0.71" in text


def test_absent_optional_keys_render_a_dash(tmp_path: Path) -> None:
    content = sample_content("review")
    for key in ("title", "request", "metrics", "evidence", "serving", "charter"):
        del content[key]
    decision = content["decision"]
    for key in ("tier", "summary", "bundle_digest", "findings", "checks", "approvals_needed"):
        del decision[key]
    decision["policy_revision"] = None
    out = tmp_path / "sparse.pdf"
    render_packet(content, [], out)
    text = _text(out)
    assert "REVIEW" in text
    assert "Promotion packet — dec-2f9a0c1e" in text
    assert "Policy revision —" in text
    assert "None — the policy raised no findings" not in text  # absent is not empty


def test_fetcher_refuses_http_and_files_outside_templates(tmp_path: Path) -> None:
    root = Path(str(importlib.resources.files("slmgate.templates")))
    fetcher = TemplateFetcher(root)
    assert fetcher.fetch((root / "packet.css").as_uri()).read().startswith(b"/*")
    outside = tmp_path / "secret.css"
    outside.write_text("body { color: red }")
    for url in (
        "http://example.com/packet.css",
        "https://example.com/packet.css",
        outside.as_uri(),
        root.as_uri() + "/../pyproject.toml",
        "data:text/css,body{}",
    ):
        with pytest.raises(PacketError):
            fetcher.fetch(url)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("decision"), "decision"),
        (lambda c: c.pop("generated_at"), "generated_at"),
        (lambda c: c["decision"].update(outcome="maybe"), "outcome"),
    ],
)
def test_failed_render_leaves_nothing_behind(tmp_path: Path, mutate: Any, message: str) -> None:
    content = copy.deepcopy(sample_content())
    mutate(content)
    out = tmp_path / "packet.pdf"
    with pytest.raises(PacketError, match=message):
        render_packet(content, sample_attachments(), out)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_removes_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weasyprint

    def broken_write(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(weasyprint.Document, "write_pdf", broken_write)
    with pytest.raises(OSError, match="disk full"):
        render_packet(sample_content(), sample_attachments(), tmp_path / "packet.pdf")
    assert list(tmp_path.iterdir()) == []


def test_duplicate_attachment_names_are_refused(tmp_path: Path) -> None:
    twice = sample_attachments()[:1] * 2
    with pytest.raises(PacketError, match="unique"):
        render_packet(sample_content(), twice, tmp_path / "packet.pdf")
    assert list(tmp_path.iterdir()) == []


def test_control_mapping_states_what_the_decision_evidences() -> None:
    from slmgate.engine.packet._controls import SECTIONS, control_rows
    from slmgate.engine.policy._decision import Decision

    checks = [{"rule_id": "approval.release-manager", "passed": False, "message": ""},
              {"rule_id": "gate.stress.accuracy.min", "passed": True, "message": ""},
              {"rule_id": "gate.policy.false_escalation_rate.max", "passed": False, "message": ""}]
    decision = Decision(
        id="dec-1", outcome="review", tier="human_signoff", findings=[], checks=checks,
        approvals_needed=[{"role": "release-manager", "count": 1}],
        waivers_applied=[{"id": "W-1", "rule_id": "gate.policy.false_escalation_rate.max"}],
        waivers_expired=[], request={}, evidence=[], bundle_digest="", policy_revision=None,
        evaluated_at="")
    rows = control_rows(decision, {"evidence": [{"kind": "eval-result", "verified": True}]})
    by = {(r["control"], r["title"]): r for r in rows}
    assert {r["framework"] for r in rows} == {"SOC 2", "ISO/IEC 42001", "EU AI Act"}
    assert {r["control"] for r in rows} >= {"CC8.1", "A.6.2.4", "A.6.2.5", "A.6.2.6", "Annex IV(2)",
                                           "Annex IV(3)", "Annex IV(4)", "Annex IV(6)"}
    approved = by[("CC8.1", "Change approved")]
    assert approved["status"] == "gap" and "approval.release-manager" in approved["note"]
    assert "the decision is review" in approved["note"]
    tested = by[("CC8.1", "Change tested")]
    assert tested["status"] == "gap" and "no verified serving-config" in tested["note"]
    metrics = by[("Annex IV(4)", "Appropriateness of the performance metrics")]
    assert metrics["status"] == "evidenced" and "under waiver" in metrics["note"]
    template = (Path(str(importlib.resources.files("slmgate.templates"))) / "packet.html.j2").read_text()
    for row in rows:
        for section in row["sections"]:
            assert f'id="{section["id"]}"' in template and section["title"] == SECTIONS[section["id"]]


def test_public_surface_is_pinned() -> None:
    from slmgate.engine.packet import _render as packet

    assert sorted(packet.__all__) == [
        "Attachment", "PacketError", "TemplateFetcher", "render_document", "render_html",
        "render_packet"]


def test_page_one_says_why_for_a_denial_and_a_review(tmp_path: Path) -> None:
    denied = sample_content("deny")
    denied["evidence"][0].update(verified=False, failure="signature: none of 1 signature(s) verifies")
    render_packet(denied, sample_attachments(), tmp_path / "deny.pdf")
    cover = PdfReader(tmp_path / "deny.pdf").pages[0].extract_text()
    assert "Why" in cover and "stress accuracy 0.71 < 0.80" in cover
    assert "Refused evidence" in cover and "none of 1 signature(s) verifies" in cover
    review = sample_content("review")
    review["decision"]["findings"].insert(0, {"rule_id": "approval.ml-lead", "severity": "review",
                                              "message": "needs 1 ml-lead approval(s), has 0",
                                              "evidence_ref": "approval"})
    render_packet(review, sample_attachments(), tmp_path / "review.pdf")
    cover = PdfReader(tmp_path / "review.pdf").pages[0].extract_text()
    assert "needs 1 ml-lead approval(s), has 0" in cover and "Approvals still needed" in cover
    render_packet(sample_content(), sample_attachments(), tmp_path / "ok.pdf")
    assert "Why" not in PdfReader(tmp_path / "ok.pdf").pages[0].extract_text().split("Outcome")[0]
