"""Acceptance tests of the real `slmgate promote` process: its exit code is the gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from slmgate.engine.ledger._store import record_path
from slmgate.evidence import format_time
from tests.conftest import NOW, World, recent

AT = format_time(NOW + timedelta(minutes=1))
# Runs the CLI and reports on stderr whether torch was ever imported in that process.
RUNNER = ("import atexit, sys\n"
          "atexit.register(lambda: print('TORCH-IMPORTED' if 'torch' in sys.modules else "
          "'TORCH-ABSENT', file=sys.stderr))\n"
          "from slmgate.engine.cli import main\n"
          "main(prog_name='slmgate')\n")


def slmgate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUNNER, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def promote(world: World, request: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """A dry run at AT; a run that records, signs or renders is made at the real time."""
    records = {"--ledger", "--packet", "--signing-key"} & {str(x) for x in extra}
    return slmgate("promote", request, "--policies", world.policies,
                   *(() if records else ("--at", AT)), *extra)


def test_approved_promotion_exits_0_records_and_renders(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence(when=recent()))
    ledger, packet = tmp_path / "ledger", tmp_path / "packet.pdf"
    r = promote(world, req, "--ledger", ledger, "--signing-key", world.secrets / "slmgate-gate.key",
                "--packet", packet, "--format", "json")
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(r.stdout)
    assert doc["outcome"] == "approve" and doc["tier"] == "automated"
    assert all(e["verified"] for e in doc["evidence"])
    assert "TORCH-ABSENT" in r.stderr
    assert (ledger / record_path(doc["id"])).is_file()
    reader = PdfReader(packet)
    assert "APPROVE" in "".join(p.extract_text() for p in reader.pages).upper()
    assert "decision-record.dsse.json" in reader.attachments


# What a dry-run promote may not load: the ledger's git, the packet's Jinja and WeasyPrint, the
# runtime's torch, regopy (the engine that is not the default), jsonschema (it only words a
# refusal; jsonschema-rs checks), and pydantic and numpy (nothing on this path needs them).
HEAVY = ("git", "jinja2", "weasyprint", "torch", "regopy", "jsonschema", "pydantic", "numpy")
IMPORTS = ("import atexit, sys\n"
           "atexit.register(lambda: print('LOADED', sorted(m for m in sys.modules "
           f"if m.split('.')[0] in {HEAVY!r}), file=sys.stderr))\n"
           "from slmgate.engine.cli import main\n"
           "main(prog_name='slmgate')\n")


def test_a_dry_run_promote_imports_only_what_it_uses(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence())
    r = subprocess.run([sys.executable, "-c", IMPORTS, "promote", str(req), "--policies",
                        str(world.policies), "--at", AT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "LOADED []" in r.stderr, r.stderr
    # ...and the same runner does see them when they are used (the check can fail)
    r = subprocess.run([sys.executable, "-c", IMPORTS, "ledger", "log", "--ledger", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)
    assert "'git'" in r.stderr, r.stderr


def test_a_second_promote_takes_the_validated_bundle_from_the_cache(world: World, tmp_path: Path) -> None:
    """No YAML parser and no cerberus once the bundle's bytes validated (``_bundle_cache``), and
    the same decision, byte for byte."""
    req = world.request(tmp_path / "req", world.standard_evidence())
    script = IMPORTS.replace(repr(HEAVY), repr((*HEAVY, "yaml", "cerberus")))
    env = {**os.environ, "SLMGATE_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", script, "promote", str(req), "--policies",
                            str(world.policies), "--at", AT, "--format", "json"],
                           capture_output=True, text=True, timeout=120, env=env) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "'cerberus'" in runs[0].stderr and "'yaml'" in runs[0].stderr  # validated, then kept
    assert "LOADED []" in runs[1].stderr, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout


def test_stress_regression_exits_1_naming_the_gate(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence(stress_accuracy=0.70))
    r = promote(world, req)
    assert r.returncode == 1, r.stderr + r.stdout
    assert "gate.stress.accuracy.min" in r.stdout
    assert r.stdout.startswith("DENY")


def test_tampered_envelope_is_never_approved(world: World, tmp_path: Path) -> None:
    evidence = world.standard_evidence()
    doc = json.loads(evidence["eval-result"])
    import base64
    st = json.loads(base64.b64decode(doc["payload"]))
    st["predicate"]["layers"]["regression"]["metrics"]["accuracy"]["candidate"] = 0.999
    doc["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    evidence["eval-result"] = json.dumps(doc).encode()
    r = promote(world, world.request(tmp_path / "req", evidence), "--format", "json")
    assert r.returncode == 4, r.stderr + r.stdout
    out = json.loads(r.stdout)
    assert out["outcome"] == "deny"
    refused = [e for e in out["evidence"] if not e["verified"]]
    assert [(e["ref"], e["failed_step"]) for e in refused] == [("eval-result", "signature")]


def test_weights_that_differ_from_the_request_are_refused(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence(), path=str(world.other))
    r = promote(world, req)
    assert r.returncode == 4
    assert "weights-binding" in r.stdout


def test_missing_evidence_for_the_tier_denies(world: World, tmp_path: Path) -> None:
    evidence = world.standard_evidence()
    del evidence["serving-config"]
    r = promote(world, world.request(tmp_path / "req", evidence))
    assert r.returncode == 1
    assert "evidence.present.serving-config" in r.stdout


def test_human_signoff_tier_exits_3_until_signed(world: World, tmp_path: Path) -> None:
    evidence = world.standard_evidence()
    evidence["rollback-plan"] = world.rollback_plan()
    req = world.request(tmp_path / "a", evidence, change_classes=["model_family_change"], rid="req-fam")
    r = promote(world, req)
    assert r.returncode == 3, r.stdout
    assert "ml-lead" in r.stdout and "release-manager" in r.stdout

    items = [{"ref": k, "path": f"{k}.dsse.json"} for k in evidence]
    doc = world.request_doc("req-fam", ["model_family_change"], items)
    evidence["approval-ml"] = world.approval("ml-lead", doc, evidence)
    evidence["approval-rm"] = world.approval("release-manager", doc, evidence)
    signed = world.request(tmp_path / "b", evidence, change_classes=["model_family_change"], rid="req-fam")
    r = promote(world, signed)
    assert r.returncode == 0, r.stdout


def test_approval_for_another_request_does_not_count(world: World, tmp_path: Path) -> None:
    evidence = world.standard_evidence()
    evidence["rollback-plan"] = world.rollback_plan()
    other = world.request_doc("req-other", ["model_family_change"], [])
    evidence["approval-ml"] = world.approval("ml-lead", other, evidence)
    items = [{"ref": k, "path": f"{k}.dsse.json"} for k in evidence]
    doc = world.request_doc("req-fam2", ["model_family_change"], items)
    evidence["approval-rm"] = world.approval("release-manager", doc, evidence)
    r = promote(world, world.request(tmp_path / "r", evidence, change_classes=["model_family_change"],
                                     rid="req-fam2"))
    assert r.returncode == 3
    assert "1× ml-lead" in r.stdout


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("change_classes"), "(document)"),
    (lambda d: d["model"].update(weights_digest="md5:abc"), "model.weights_digest"),
    (lambda d: d.update(change_classes="weights_retrain"), "change_classes"),
    (lambda d: d["evidence"].append({"ref": "ghost", "path": "nope.json"}), "evidence.5.path"),
])
def test_malformed_request_exits_2_naming_file_and_field(world: World, tmp_path: Path, edit, field) -> None:  # type: ignore[no-untyped-def]
    req = world.request(tmp_path / "req", world.standard_evidence())
    doc = json.loads(req.read_text())
    edit(doc)
    req.write_text(json.dumps(doc))
    ledger = tmp_path / "ledger"
    r = promote(world, req, "--ledger", ledger, "--signing-key", world.secrets / "slmgate-gate.key")
    assert r.returncode == 2, r.stderr
    assert str(req) in r.stderr and field in r.stderr
    assert not ledger.exists()


def test_request_that_is_not_json_exits_2(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "request.json"
    bad.write_text("{ nope")
    r = promote(world, bad)
    assert r.returncode == 2 and "not valid JSON" in r.stderr and str(bad) in r.stderr


def test_unknown_format_is_refused_not_defaulted(world: World, tmp_path: Path) -> None:
    req = world.request(tmp_path / "req", world.standard_evidence())
    r = promote(world, req, "--format", "yaml")
    assert r.returncode == 2 and "yaml" in r.stderr


def test_broken_policy_is_a_deny_with_exit_4(world: World, tmp_path: Path) -> None:
    policies = world.policies_with_rego(
        tmp_path / "policies", "package slmgate.promotion\nimport rego.v1\n"
        "decision := {\"outcome\": \"approve\"} if { to_number(\"not a number\") > 0 }\n")
    req = world.request(tmp_path / "req", world.standard_evidence())
    r = slmgate("promote", req, "--policies", policies, "--at", AT, "--format", "json")
    assert r.returncode == 4, r.stdout + r.stderr
    assert json.loads(r.stdout)["outcome"] == "deny"
