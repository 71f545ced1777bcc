"""A packet of a promotion with many envelopes: the main pages summarise them by kind and signer,
an appendix lists every one, each is attached once, and the packet still re-verifies. Built at a
size the CI affords (past ``LISTED_MAX``); the 1,000-envelope figure is in bench/bench_packet.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pypdf import PdfReader

from slmgate.engine.packet._verify import RootOfTrust, verify_packet
from slmgate.engine.packet._view import LISTED_MAX, _bounded, _listing
from slmgate.evidence import format_time
from tests.conftest import NOW, World
from tests.engine.packet.test_packet_verify import Made, make_packet

APPROVERS = ("ml-lead", "release-manager", "privacy-officer")
MANY = LISTED_MAX + 12


def _approval(world: World, signer: str, i: int) -> bytes:
    return world.envelope(signer, "approval", {
        "request_id": "req-test-1", "request_digest": "sha256:" + "0" * 64, "decision": "approve",
        "approved_at": format_time(NOW), "comment": f"approval number {i}"})


@pytest.fixture(scope="module")
def many(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Made, dict[str, bytes]]:
    evidence = session_world.standard_evidence()
    for i in range(MANY - len(evidence)):
        # two signed by a key that may not sign approvals: refused, with a reason
        signer = "runtime" if i in (3, 17) else APPROVERS[i % 3]
        evidence[f"approval-{i:03d}"] = _approval(session_world, signer, i)
    return make_packet(session_world, tmp_path_factory.mktemp("many"), evidence), evidence


def _text(reader: PdfReader, pages: range) -> str:
    return "\n".join(reader.pages[i].extract_text() for i in pages)


def _appendix_start(reader: PdfReader, title: str) -> int:
    return next(i for i, page in enumerate(reader.pages) if title in page.extract_text())


def test_a_many_envelope_packet_lists_every_envelope_in_the_appendix(
        many: tuple[Made, dict[str, bytes]]) -> None:
    made, evidence = many
    reader = PdfReader(made.pdf)
    start = _appendix_start(reader, "Appendix A — every evidence envelope")
    appendix = _text(reader, range(start, len(reader.pages)))
    listed = re.findall(r"^\s*\d+ (\S+)", appendix, flags=re.MULTILINE)
    assert sorted(ref for ref in listed if ref in evidence) == sorted(evidence)
    assert appendix.count("REFUSED") == 2
    assert appendix.count("NOT BOUND: ") == MANY - 5 - 2  # each verified approval, not bound here
    assert appendix.count("refused: key-authorization: runtime may not sign approval") == 2
    main = _text(reader, range(start))
    assert "Summarised here by kind and signer" in main
    assert "approval-017" in main  # a refused envelope is named on the main pages too
    assert "approval-020" not in main  # a verified one only in the appendix


def test_each_envelope_is_attached_once(many: tuple[Made, dict[str, bytes]]) -> None:
    made, evidence = many
    attached = PdfReader(made.pdf).attachments
    envelopes = {name: blobs for name, blobs in attached.items() if name.startswith("evidence/")}
    assert sorted(envelopes) == sorted(f"evidence/{ref}.dsse.json" for ref in evidence)
    assert all(len(blobs) == 1 for blobs in envelopes.values())
    assert all(envelopes[f"evidence/{ref}.dsse.json"][0] == raw for ref, raw in evidence.items())


def test_a_many_envelope_packet_verifies(session_world: World, many: tuple[Made, dict[str, bytes]]) -> None:
    made, _ = many
    report = verify_packet(made.pdf, RootOfTrust.from_trust_file(session_world.policies / "trust.yaml"))
    assert report.ok, report.text()
    assert any(s["step"] == "pages" and s["ok"] for s in report.steps)
    assert f"{MANY} envelope(s) re-verified" in report.text()
    assert "2 refused as recorded: approval-003, approval-017" in report.text()


def _rows(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"ref": f"e{i}", "kind": "approval", "signers": ["ml-lead (ml-lead, person)"], "verified": True,
             "signed_at": "2026-11-20T12:00:00Z", "failure": None, "envelope_sha256": "ab" * 32, **fields}
            for i in range(n)]


def test_up_to_listed_max_the_main_pages_list_every_row_and_past_it_an_appendix_does() -> None:
    assert _listing(_rows(LISTED_MAX), [])["evidence_appendix"] is None
    listing = _listing(_rows(LISTED_MAX + 1), [])
    lines = "\n".join(listing["evidence_appendix"]).splitlines()
    assert len(lines) == LISTED_MAX + 1 and all(len(line) <= 118 for line in lines)
    assert listing["evidence_summary"] == [{"group": ("approval", "ml-lead (ml-lead, person)"),
                                            "count": LISTED_MAX + 1, "verified": LISTED_MAX + 1}]
    assert all(block.count("\n") < 50 for block in listing["evidence_appendix"])


def test_a_refused_row_carries_its_reason_and_long_fields_are_cut_to_the_line() -> None:
    rows = _rows(LISTED_MAX + 1)
    rows[0].update(verified=False, failure="signature: " + "x" * 300, ref="r" * 80)
    lines = "\n".join(_listing(rows, [])["evidence_appendix"]).splitlines()
    assert "REFUSED" in lines[0] and lines[1].strip().startswith("refused: signature: xxx")
    assert all(len(line) <= 118 for line in lines) and lines[0].split()[1].endswith("…")


def test_an_approval_line_says_whether_each_signature_is_bound() -> None:
    rows = _rows(LISTED_MAX + 1)
    approvals = [{"ref": "e0", "signer": "ml-lead", "role": "ml-lead", "request_bound": True},
                 {"ref": "e1", "signer": "ml-lead", "role": "ml-lead", "request_bound": False}]
    lines = "\n".join(_listing(rows, approvals)["evidence_appendix"]).splitlines()
    assert lines[0].endswith("bound: ml-lead (ml-lead)") and "NOT BOUND: ml-lead" in lines[1]
    assert lines[2].endswith("ml-lead (ml-lead, person)")


def test_many_approvals_bring_the_appendix_even_with_few_envelopes() -> None:
    approvals = [{"ref": "e0", "signer": f"s{i}", "role": "ml-lead", "request_bound": True}
                 for i in range(LISTED_MAX + 1)]
    listing = _listing(_rows(1), approvals)
    assert listing["evidence_appendix"] is not None and listing["approval_summary"] is not None


def test_a_long_policy_message_is_cut_and_says_where_the_whole_one_is() -> None:
    assert _bounded("short") == "short"
    cut = _bounded("y" * 5000)
    assert cut.startswith("y" * 600) and "of 5,000 characters" in cut and "signed decision record" in cut
