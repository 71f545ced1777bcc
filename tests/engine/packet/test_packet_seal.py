"""The packet seal: pages checked against the gate's signature over their digests, without a
re-render, and only when the seal is the gate's, about this very record. Every way a requester or
a later editor could bend it — dropping it, copying it from another packet, signing one with
another key, sealing edited pages — is refused or falls back to the re-render."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader

from slmgate.engine.packet import _verify as _packet_verify
from slmgate.engine.packet._files import RECORD_NAME, SEAL_NAME
from slmgate.engine.packet._pages import PAGE_DIGEST_FORMAT, page_digests
from slmgate.engine.packet._seal import SealRefused, read_seal, seal_envelope
from slmgate.engine.packet._verify import PagesError, RootOfTrust, read_record, verify_packet
from slmgate.evidence import SigningKey, Statement, check_predicate, make_statement, sign_envelope
from slmgate.evidence._dsse import Envelope
from tests.conftest import World
from tests.engine.packet.test_packet_verify import AT, Made, attachments, failed, make_packet, rewrite


@pytest.fixture(scope="module")
def sealed(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_packet(session_world, tmp_path_factory.mktemp("sealed"),
                       session_world.standard_evidence(), sealed=True)


@pytest.fixture(scope="module")
def other(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_packet(session_world, tmp_path_factory.mktemp("other"),
                       session_world.standard_evidence(stress_accuracy=0.70), sealed=True)


@pytest.fixture(scope="module")
def gate(session_world: World) -> RootOfTrust:
    return RootOfTrust.from_gate_key(session_world.policies / "keys" / "slmgate-gate.pub")


@pytest.fixture(scope="module")
def trust(session_world: World) -> RootOfTrust:
    return RootOfTrust.from_trust_file(session_world.policies / "trust.yaml")


def _without_rerender(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a sealed packet was re-rendered without --rerender")
    monkeypatch.setattr(_packet_verify, "_rerendered", refuse)


def _drop(src: Path, dst: Path, name: str) -> Path:
    with pikepdf.open(src) as pdf:
        del pdf.attachments[name]
        pdf.save(dst)
    return dst


def _edit_cover(src: Path, dst: Path) -> Path:
    """Text drawn on the first page (the cover still says what it said)."""
    with pikepdf.open(src) as pdf:
        pdf.pages[0].contents_add(pikepdf.Stream(pdf, b"q 1 0 0 1 0 0 cm Q"), prepend=False)
        pdf.save(dst)
    return dst


def _seal_of(made: Made) -> bytes:
    return attachments(made.pdf)[SEAL_NAME]


def test_a_sealed_packet_verifies_against_its_seal_without_rendering(
        sealed: Made, gate: RootOfTrust, trust: RootOfTrust, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_rerender(monkeypatch)
    for root in (gate, trust):
        report = verify_packet(sealed.pdf, root)
        assert report.ok, report.text()
        assert "the pages the gate sealed" in report.steps[-1]["detail"]
        assert "renders to" not in report.steps[-1]["detail"]


def test_the_seal_is_the_gates_signature_over_these_pages_about_this_record(sealed: Made) -> None:
    envelope = Envelope.from_json(_seal_of(sealed))
    statement = Statement.parse(envelope.payload)
    assert statement.kind == "packet-seal"
    check_predicate("packet-seal", statement.predicate)
    assert statement.subjects == ((RECORD_NAME, hashlib.sha256(sealed.record).hexdigest()),)
    assert statement.predicate["pages"] == page_digests(sealed.pdf)
    assert statement.predicate["page_digest"] == PAGE_DIGEST_FORMAT


def test_the_seal_is_a_pdfa3_source_file_the_pages_do_not_list(sealed: Made) -> None:
    with pikepdf.open(sealed.pdf) as pdf:
        spec = pdf.attachments[SEAL_NAME].obj
        assert spec.AFRelationship == pikepdf.Name.Source
        assert spec.objgen in {ref.objgen for ref in pdf.Root.AF}
        names = [str(n) for n in pdf.Root.Names.EmbeddedFiles.Names[::2]]
        assert names == sorted(names) and SEAL_NAME in names  # a name tree is sorted
    text = "".join(page.extract_text() for page in PdfReader(sealed.pdf).pages)
    assert RECORD_NAME in text and SEAL_NAME not in text


def test_sealing_is_deterministic(session_world: World, sealed: Made, tmp_path: Path) -> None:
    again = make_packet(session_world, tmp_path, session_world.standard_evidence(), sealed=True)
    assert again.pdf.read_bytes() == sealed.pdf.read_bytes()


def test_a_packet_without_its_seal_is_checked_by_rerendering(sealed: Made, gate: RootOfTrust,
                                                             tmp_path: Path) -> None:
    bare = _drop(sealed.pdf, tmp_path / "bare.pdf", SEAL_NAME)
    report = verify_packet(bare, gate)
    assert report.ok, report.text()
    assert "renders to" in report.steps[-1]["detail"]
    # dropping the seal does not let an edited page through: the re-render catches it
    error = failed(_edit_cover(bare, tmp_path / "bare-edited.pdf"), gate)
    assert isinstance(error, PagesError) and error.message.startswith("page 1 differs")


def test_an_edited_page_fails_against_the_seal(sealed: Made, gate: RootOfTrust, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _without_rerender(monkeypatch)
    error = failed(_edit_cover(sealed.pdf, tmp_path / "edited.pdf"), gate)
    assert isinstance(error, PagesError)
    assert error.message.startswith("page 1 differs") and "the gate sealed" in error.message


def test_a_seal_copied_from_another_packet_is_refused(sealed: Made, other: Made, gate: RootOfTrust,
                                                      tmp_path: Path) -> None:
    bad = rewrite(sealed.pdf, tmp_path / "copied.pdf", replace={SEAL_NAME: _seal_of(other)})
    error = failed(bad, gate)
    assert isinstance(error, PagesError) and "another decision record" in error.message


@pytest.mark.parametrize("signer", ["runtime", "fresh"])
def test_a_seal_over_edited_pages_signed_by_another_key_is_refused(
        session_world: World, sealed: Made, trust: RootOfTrust, tmp_path: Path, signer: str) -> None:
    """The forger edits a page and seals the edited pages themselves: with a key the
    organisation trusts for something else, or with one of their own."""
    edited = _edit_cover(sealed.pdf, tmp_path / "edited.pdf")
    key = session_world.key("runtime") if signer == "runtime" else SigningKey.generate("ed25519")
    forged = seal_envelope(sealed.record, _decision_id(sealed), page_digests(edited), key, AT)
    bad = rewrite(edited, tmp_path / "forged.pdf", replace={SEAL_NAME: forged})
    error = failed(bad, trust)
    assert isinstance(error, PagesError)
    assert "not signed by the key that signed the decision record" in error.message


def test_a_seal_is_refused_for_another_decision_id_or_digest_format(session_world: World, sealed: Made,
                                                                   trust: RootOfTrust) -> None:
    """Even under the gate's key, a seal must name this decision and a digest format this
    slmgate computes."""
    record = read_record(sealed.record, trust.trust, "trust")
    key, pages = session_world.key("slmgate-gate"), page_digests(sealed.pdf)
    with pytest.raises(SealRefused, match="names decision dec-00000000000000000000"):
        read_seal(seal_envelope(sealed.record, "dec-00000000000000000000", pages, key, AT),
                  sealed.record, _decision_id(sealed), record.keys)
    predicate = {"sealed_at": "2026-11-20T12:01:00Z", "decision_id": _decision_id(sealed),
                 "page_digest": "slmgate-page/1", "pages": pages}
    statement = make_statement(RECORD_NAME, hashlib.sha256(sealed.record).hexdigest(), "packet-seal",
                               predicate)
    with pytest.raises(SealRefused, match="--rerender"):
        read_seal(sign_envelope(statement, [key]).to_json(), sealed.record, _decision_id(sealed),
                  record.keys)
    predicate["pages"] = []  # the schema wants at least one page
    statement = make_statement(RECORD_NAME, hashlib.sha256(sealed.record).hexdigest(), "packet-seal",
                               predicate)
    with pytest.raises(SealRefused, match="pages"):
        read_seal(sign_envelope(statement, [key]).to_json(), sealed.record, _decision_id(sealed),
                  record.keys)


def test_rerender_also_checks_pages_the_gate_sealed_against_what_the_record_says(
        session_world: World, sealed: Made, gate: RootOfTrust, tmp_path: Path) -> None:
    """A page the gate itself sealed but the record does not render to (a renderer bug, or a
    gate host compromised after deciding) passes the seal; --rerender catches it."""
    edited = _edit_cover(sealed.pdf, tmp_path / "edited.pdf")
    resealed = seal_envelope(sealed.record, _decision_id(sealed), page_digests(edited),
                             session_world.key("slmgate-gate"), AT)
    bad = rewrite(edited, tmp_path / "resealed.pdf", replace={SEAL_NAME: resealed})
    assert verify_packet(bad, gate).ok
    report = verify_packet(bad, gate, rerender=True)
    assert not report.ok and isinstance(report.error, PagesError)
    assert report.error.message.startswith("page 1 differs") and "renders to" in report.error.message
    both = verify_packet(sealed.pdf, gate, rerender=True)
    detail = both.steps[-1]["detail"]
    assert both.ok and "the gate sealed" in detail and "renders to" in detail


def _decision_id(made: Made) -> str:
    import json

    envelope = Envelope.from_json(made.record)
    return str(json.loads(envelope.payload)["predicate"]["decision"]["id"])
