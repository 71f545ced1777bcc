"""Every page a reader sees is bound to the signed record: pages spliced in from another packet,
dropped, reordered or added, an image laid over the cover, single bits flipped in content
streams — none verifies, and the first page that differs is named."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pikepdf
import pytest

from slmgate.engine.packet import _verify as _packet_verify
from slmgate.engine.packet._files import SEAL_NAME
from slmgate.engine.packet._pages import first_differing_page, page_digests
from slmgate.engine.packet._verify import BundleError, PagesError, RootOfTrust, verify_packet
from tests.conftest import World
from tests.engine.packet.test_packet_verify import Made, attachments, failed, make_packet, rewrite
from tests.engine.policy.test_policy_yaml import BILLION_LAUGHS


@pytest.fixture(scope="module", params=["unsealed", "sealed"])
def sealing(request: pytest.FixtureRequest) -> bool:
    """Every page attack runs twice: on a packet checked by re-rendering, and on one the gate
    sealed (checked against the seal)."""
    return bool(request.param == "sealed")


@pytest.fixture(scope="module")
def approved(session_world: World, tmp_path_factory: pytest.TempPathFactory, sealing: bool) -> Made:
    return make_packet(session_world, tmp_path_factory.mktemp("approved"),
                       session_world.standard_evidence(), sealed=sealing)


@pytest.fixture(scope="module")
def denied(session_world: World, tmp_path_factory: pytest.TempPathFactory, sealing: bool) -> Made:
    # the stress layer regresses: the gate denies
    return make_packet(session_world, tmp_path_factory.mktemp("denied"),
                       session_world.standard_evidence(stress_accuracy=0.70), sealed=sealing)


@pytest.fixture(scope="module")
def gate(session_world: World) -> RootOfTrust:
    return RootOfTrust.from_gate_key(session_world.policies / "keys" / "slmgate-gate.pub")


def _edit(src: Path, dst: Path, fn) -> Path:  # type: ignore[no-untyped-def]
    with pikepdf.open(src) as pdf:
        fn(pdf)
        pdf.save(dst)
    return dst


def _pages_error(pdf: Path, gate: RootOfTrust, page: int) -> PagesError:
    error = failed(pdf, gate)
    assert isinstance(error, PagesError), error
    assert error.message.startswith(f"page {page} "), error.message
    sealed = SEAL_NAME in attachments(pdf)  # checked against the seal, else by re-rendering
    assert ("the gate sealed" in error.message) == sealed and ("renders to" in error.message) != sealed
    return error


def test_a_rewritten_but_unchanged_packet_still_verifies(approved: Made, gate: RootOfTrust,
                                                         tmp_path: Path) -> None:
    """pikepdf renumbers objects when it saves: that alone changes nothing a reader sees."""
    same = _edit(approved.pdf, tmp_path / "same.pdf", lambda pdf: None)
    assert same.read_bytes() != approved.pdf.read_bytes()
    report = verify_packet(same, gate)
    assert report.ok, report.text()
    assert report.steps[-1]["step"] == "pages"


def test_a_page_spliced_in_from_another_packet_fails(approved: Made, denied: Made, gate: RootOfTrust,
                                                     tmp_path: Path) -> None:
    # the denied packet dressed up: its inner pages replaced by the approved packet's
    with pikepdf.open(approved.pdf) as donor, pikepdf.open(denied.pdf) as pdf:
        assert len(donor.pages) > 2 and len(pdf.pages) > 2
        pdf.pages[1] = donor.pages[1]
        pdf.save(tmp_path / "spliced.pdf")
    _pages_error(tmp_path / "spliced.pdf", gate, 2)


def test_a_dropped_page_fails(approved: Made, gate: RootOfTrust, tmp_path: Path) -> None:
    n = len(pikepdf.open(approved.pdf).pages)
    bad = _edit(approved.pdf, tmp_path / "dropped.pdf", lambda pdf: pdf.pages.__delitem__(n - 1))
    error = _pages_error(bad, gate, n)
    assert "is missing" in error.message


def test_a_dropped_inner_page_fails_at_that_page(approved: Made, gate: RootOfTrust, tmp_path: Path) -> None:
    bad = _edit(approved.pdf, tmp_path / "dropped2.pdf", lambda pdf: pdf.pages.__delitem__(1))
    _pages_error(bad, gate, 2)


def test_reordered_pages_fail(approved: Made, gate: RootOfTrust, tmp_path: Path) -> None:
    def swap(pdf: pikepdf.Pdf) -> None:
        second = pdf.pages[1]
        del pdf.pages[1]
        pdf.pages.append(second)
    _pages_error(_edit(approved.pdf, tmp_path / "reordered.pdf", swap), gate, 2)


def test_an_added_page_fails(approved: Made, denied: Made, gate: RootOfTrust, tmp_path: Path) -> None:
    n = len(pikepdf.open(approved.pdf).pages)
    with pikepdf.open(approved.pdf) as pdf, pikepdf.open(denied.pdf) as donor:
        pdf.pages.append(donor.pages[1])
        pdf.save(tmp_path / "added.pdf")
    error = _pages_error(tmp_path / "added.pdf", gate, n + 1)
    assert "is extra" in error.message


def test_an_image_laid_over_the_cover_fails(approved: Made, gate: RootOfTrust, tmp_path: Path) -> None:
    """The cover's text is untouched (so the visible-decision step passes); a white box with
    other words is drawn over it as an image XObject."""
    def overlay(pdf: pikepdf.Pdf) -> None:
        page = pdf.pages[0]
        image = pikepdf.Stream(pdf, b"\xff\xff\xff", Type=pikepdf.Name.XObject,
                               Subtype=pikepdf.Name.Image, Width=1, Height=1,
                               ColorSpace=pikepdf.Name.DeviceRGB, BitsPerComponent=8)
        resources = page.obj.get("/Resources")
        if "/XObject" not in resources:
            resources.XObject = pikepdf.Dictionary()
        resources.XObject.Im999 = image
        page.contents_add(pikepdf.Stream(pdf, b"q 400 0 0 80 80 600 cm /Im999 Do Q"), prepend=False)
    bad = _edit(approved.pdf, tmp_path / "overlay.pdf", overlay)
    report = verify_packet(bad, gate)
    assert {"step": "visible-decision", "ok": True} .items() <= report.steps[1].items()
    _pages_error(bad, gate, 1)


def _content_streams(pdf: pikepdf.Pdf) -> list[tuple[int, pikepdf.Stream]]:
    out = []
    for i, page in enumerate(pdf.pages):
        contents = page.obj.Contents
        for stream in (contents if isinstance(contents, pikepdf.Array) else [contents]):
            out.append((i, stream))
    return out


def _flip(src: Path, dst: Path, rng: random.Random) -> int:
    """Flip one random bit in one random content stream, as stored; returns the page index."""
    with pikepdf.open(src) as pdf:
        page, stream = rng.choice(_content_streams(pdf))
        raw = bytearray(stream.read_raw_bytes())
        bit = rng.randrange(len(raw) * 8)
        raw[bit // 8] ^= 1 << (bit % 8)
        stream.write(bytes(raw), filter=stream.get("/Filter"), decode_parms=stream.get("/DecodeParms"))
        pdf.save(dst)
    return page


def test_single_bit_flips_in_content_streams_change_the_page_digest(approved: Made, tmp_path: Path) -> None:
    genuine = page_digests(approved.pdf)
    assert page_digests(_edit(approved.pdf, tmp_path / "same.pdf", lambda pdf: None)) == genuine
    rng = random.Random(11)
    for trial in range(60):
        page = _flip(approved.pdf, tmp_path / f"flip{trial}.pdf", rng)
        assert first_differing_page(genuine, page_digests(tmp_path / f"flip{trial}.pdf")) == page + 1


def test_single_bit_flips_in_content_streams_never_verify(approved: Made, gate: RootOfTrust,
                                                          tmp_path: Path) -> None:
    rng = random.Random(1111)
    for trial in range(4):
        bad = tmp_path / f"flip{trial}.pdf"
        page = _flip(approved.pdf, bad, rng)
        report = verify_packet(bad, gate)
        assert not report.ok, report.text()
        if report.error is not None and report.error.step == "pages":
            assert report.error.message.startswith(f"page {page + 1} ")


def test_a_carried_bundle_file_is_hashed_before_it_is_parsed(approved: Made, gate: RootOfTrust,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A billion-laughs tiers.yaml in the packet is refused by digest, never handed to YAML."""
    def parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the carried bundle was parsed before its digest was checked")
    monkeypatch.setattr(_packet_verify, "load_bundle", parse)
    bad = rewrite(approved.pdf, tmp_path / "laughs.pdf",
                  replace={"policy-bundle/tiers.yaml": BILLION_LAUGHS.encode()})
    started = time.perf_counter()
    error = failed(bad, gate)
    assert time.perf_counter() - started < 5
    assert isinstance(error, BundleError) and "hashes to" in error.message
