"""Acceptance tests of the real `slmgate packet render|verify` processes and their exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader

from slmgate.engine.packet._files import SEAL_NAME
from slmgate.evidence import format_time
from tests.conftest import NOW, World, recent

AT = format_time(NOW + timedelta(minutes=1))


def slmgate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slmgate.engine.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def promoted(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(packet written by `promote --packet`, ledger, decision id)."""
    tmp = tmp_path_factory.mktemp("cli")
    req = session_world.request(tmp / "req", session_world.standard_evidence(when=recent()))
    ledger, pdf = tmp / "ledger", tmp / "promote.pdf"
    r = slmgate("promote", req, "--policies", session_world.policies, "--ledger", ledger,
                "--signing-key", session_world.secrets / "slmgate-gate.key", "--packet", pdf,
                "--format", "json")
    assert r.returncode == 0, r.stderr + r.stdout
    return pdf, ledger, json.loads(r.stdout)["id"]


def test_packet_render_from_the_ledger_is_byte_identical_to_promote(
    promoted: tuple[Path, Path, str], session_world: World, tmp_path: Path
) -> None:
    """Sealed with the same gate key, the packet rendered later from the ledger is the very file
    `promote --packet` wrote; without a key it is the same packet unsealed, checked by re-rendering."""
    pdf, ledger, decision_id = promoted
    again, bare = tmp_path / "again.pdf", tmp_path / "bare.pdf"
    r = slmgate("packet", "render", "--ledger", ledger, "--decision", decision_id,
                "--policies", session_world.policies, "-o", again,
                "--signing-key", session_world.secrets / "slmgate-gate.key")
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == pdf.read_bytes()
    assert SEAL_NAME in PdfReader(pdf).attachments
    r = slmgate("packet", "render", "--ledger", ledger, "--decision", decision_id,
                "--policies", session_world.policies, "-o", bare)
    assert r.returncode == 0, r.stderr
    assert SEAL_NAME not in PdfReader(bare).attachments
    texts = [[p.extract_text() for p in PdfReader(f).pages] for f in (bare, pdf)]
    assert texts[0] == texts[1]
    r = slmgate("packet", "verify", bare, "--trust", session_world.policies / "trust.yaml")
    assert r.returncode == 0 and "renders to" in r.stdout, r.stdout + r.stderr


def test_render_refuses_to_seal_with_a_key_that_did_not_sign_the_record(
    promoted: tuple[Path, Path, str], session_world: World, tmp_path: Path
) -> None:
    _, ledger, decision_id = promoted
    out = tmp_path / "sealed-by-runtime.pdf"
    r = slmgate("packet", "render", "--ledger", ledger, "--decision", decision_id, "--policies",
                session_world.policies, "-o", out, "--signing-key", session_world.secrets / "runtime.key")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "runtime.key" in r.stderr and "did not sign the decision record" in r.stderr
    assert not out.exists()


def test_verify_rerender_checks_the_seal_and_renders_again(
    promoted: tuple[Path, Path, str], session_world: World
) -> None:
    r = slmgate("packet", "verify", promoted[0], "--trust", session_world.policies / "trust.yaml")
    assert r.returncode == 0 and "the gate sealed" in r.stdout and "renders to" not in r.stdout, r.stdout
    r = slmgate("packet", "verify", promoted[0], "--trust", session_world.policies / "trust.yaml",
                "--rerender", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    pages = json.loads(r.stdout)["steps"][-1]
    assert pages["step"] == "pages"
    assert "the gate sealed" in pages["detail"] and "renders to" in pages["detail"]


def test_verify_exits_0_for_the_untouched_packet(
    promoted: tuple[Path, Path, str], session_world: World
) -> None:
    r = slmgate("packet", "verify", promoted[0], "--trust", session_world.policies / "trust.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK: ") and "replay" in r.stdout


def test_verify_exits_4_naming_the_altered_file(
    promoted: tuple[Path, Path, str], session_world: World, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pdf"
    with pikepdf.open(promoted[0]) as pdf:
        spec = pdf.attachments["evidence/eval-result.dsse.json"].obj
        spec.EF.F.write(spec.EF.F.read_bytes().replace(b'"payload"', b'"payload" '))
        pdf.save(bad)
    r = slmgate("packet", "verify", bad, "--gate-key", session_world.policies / "keys" / "slmgate-gate.pub",
                "--format", "json")
    assert r.returncode == 4, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["verified"] is False and doc["failed_step"] == "attachments"
    assert "changed: evidence/eval-result.dsse.json" in doc["reason"]


def test_verify_exits_2_for_unreadable_input_or_no_root_of_trust(
    promoted: tuple[Path, Path, str], session_world: World, tmp_path: Path
) -> None:
    (tmp_path / "junk.pdf").write_text("not a pdf")
    trust = session_world.policies / "trust.yaml"
    assert slmgate("packet", "verify", tmp_path / "junk.pdf", "--trust", trust).returncode == 2
    none = slmgate("packet", "verify", promoted[0])  # the packet alone is no root of trust
    assert none.returncode == 2 and "exactly one root of trust" in none.stderr


def test_render_refuses_a_bundle_that_is_not_the_one_decided_under(
    promoted: tuple[Path, Path, str], session_world: World, tmp_path: Path
) -> None:
    record = tmp_path / "record.dsse.json"
    record.write_bytes(PdfReader(promoted[0]).attachments["decision-record.dsse.json"][0])
    request = session_world.request(tmp_path / "req", session_world.standard_evidence())
    changed = tmp_path / "policies"
    shutil.copytree(session_world.policies, changed, ignore=shutil.ignore_patterns(".git"))
    (changed / "waivers.yaml").write_text("# edited after the decision\nwaivers: []\n")
    args = ("packet", "render", "--record", record, "--request", request, "-o", tmp_path / "x.pdf")
    r = slmgate(*args, "--policies", changed)
    assert r.returncode == 2, r.stderr
    assert "the decision was made under" in r.stderr
    assert not (tmp_path / "x.pdf").exists()
