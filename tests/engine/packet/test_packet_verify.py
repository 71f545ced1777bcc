"""`verify_packet`: a packet re-verifies offline from what it carries, under the caller's root of
trust; every tampering — an attached file, the record, the cover, the keys — is named and fails."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request
from slmgate.engine.packet._content import packet_attachments, packet_content
from slmgate.engine.packet._render import render_packet
from slmgate.engine.packet._seal import sealer
from slmgate.engine.packet._verify import (
    AttachmentsError,
    BundleError,
    PacketTampered,
    RecordError,
    ReplayError,
    RootOfTrust,
    VisibleDecisionError,
    verify_packet,
)
from slmgate.engine.promote import sign_decision_record
from slmgate.evidence import (
    SigningKey,
    canonical_json,
    sign_envelope,
    write_key_pair,
)
from slmgate.evidence.errors import InputError
from tests.conftest import NOW, World

AT = NOW + timedelta(minutes=1)
IDENTITIES = ("eval-harness", "runtime", "release-manager", "ml-lead", "privacy-officer", "data-owner",
              "trainer", "slmgate-gate")


@dataclasses.dataclass(frozen=True)
class Made:
    pdf: Path
    policies: Path
    record: bytes


def make_packet(world: World, folder: Path, evidence: dict[str, bytes], *, policies: Path | None = None,
                gate: SigningKey | None = None, sealed: bool = False) -> Made:
    """Promote ``evidence`` under ``policies`` (default: the world's) and render its packet;
    ``sealed``: with the gate's seal over its pages, as `slmgate promote --packet` writes it."""
    policies = policies or world.policies
    request = load_request(world.request(folder / "req", evidence))
    bundle = load_bundle(policies)
    result = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=AT)
    key = gate or world.key("slmgate-gate")
    record = sign_decision_record(result.decision, key)
    content = packet_content(result.decision, result.facts, bundle, result.verified)
    pdf = folder / "packet.pdf"
    render_packet(content, packet_attachments(request, record, result.decision, bundle), pdf,
                  sealer(record, result.decision.id, key, AT) if sealed else None)
    return Made(pdf, policies, record)


def rewrite(src: Path, dst: Path, replace: dict[str, bytes] | None = None,
            add: dict[str, bytes] | None = None) -> Path:
    """A copy of ``src`` with embedded files' bytes replaced, or files added."""
    with pikepdf.open(src) as pdf:
        for name, data in (replace or {}).items():
            pdf.attachments[name].obj.EF.F.write(data)
        for name, data in (add or {}).items():
            pdf.attachments[name] = pikepdf.AttachedFileSpec(pdf, data)
        pdf.save(dst)
    return dst


def attachments(pdf: Path) -> dict[str, bytes]:
    return {name: blobs[0] for name, blobs in PdfReader(pdf).attachments.items()}


def other_keys(world: World, dest: Path, names: tuple[str, ...]) -> tuple[Path, dict[str, SigningKey]]:
    """A copy of the world's policy repository whose ``names`` identities have fresh keys."""
    shutil.copytree(world.policies, dest, ignore=shutil.ignore_patterns(".git"))
    keys = {}
    for name in names:
        keys[name] = SigningKey.generate("ed25519")
        (dest / "keys" / f"{name}.pub").unlink()
        write_key_pair(keys[name], dest.parent / "secrets" / f"{name}.key", dest / "keys" / f"{name}.pub")
    return dest, keys


def resign(world: World, evidence: dict[str, bytes], keys: dict[str, SigningKey]) -> dict[str, bytes]:
    """The same statements, signed by other keys (the eval with a better stress score)."""
    signer = {"weights-manifest": "runtime", "serving-config": "runtime", "eval-result": "eval-harness",
              "training-run": "trainer", "data-card-tickets_scrubbed": "data-owner"}
    out = {}
    for ref, raw in evidence.items():
        if signer[ref] not in keys:  # an identity the forger kept: its genuine envelope
            out[ref] = raw
            continue
        statement = json.loads(base64.b64decode(json.loads(raw)["payload"]))
        if ref == "eval-result":
            statement["predicate"]["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = 0.99
        out[ref] = sign_envelope(canonical_json(statement), [keys[signer[ref]]]).to_json()
    return out


@pytest.fixture(scope="module")
def genuine(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_packet(session_world, tmp_path_factory.mktemp("genuine"), session_world.standard_evidence())


@pytest.fixture(scope="module")
def org_trust(session_world: World) -> RootOfTrust:
    return RootOfTrust.from_trust_file(session_world.policies / "trust.yaml")


@pytest.fixture(scope="module")
def gate_key(session_world: World) -> RootOfTrust:
    return RootOfTrust.from_gate_key(session_world.policies / "keys" / "slmgate-gate.pub")


def failed(pdf: Path, root: RootOfTrust) -> PacketTampered:
    report = verify_packet(pdf, root)
    assert not report.ok, report.text()
    assert report.error is not None and report.steps[-1] == {
        "step": report.error.step, "ok": False, "detail": report.error.message}
    return report.error


def test_untouched_packet_verifies_under_the_trust_policy_and_the_gate_key(
    genuine: Made, org_trust: RootOfTrust, gate_key: RootOfTrust
) -> None:
    for root in (org_trust, gate_key):
        report = verify_packet(genuine.pdf, root)
        assert report.ok, report.text()
        assert [s["step"] for s in report.steps] == [
            "decision-record", "visible-decision", "attachments", "policy-bundle", "evidence", "replay",
            "pages"]
        assert report.decision["outcome"] == "approve"
        assert report.text().startswith("OK: ")
        assert report.to_json()["verified"] is True


def test_the_carried_bundle_reproduces_the_recorded_digest(genuine: Made, tmp_path: Path) -> None:
    files = attachments(genuine.pdf)
    bundle_files = {n.removeprefix("policy-bundle/"): b for n, b in files.items()
                    if n.startswith("policy-bundle/")}
    assert {"trust.yaml", "charter.yaml", "keys/slmgate-gate.pub"} <= set(bundle_files)
    assert any(n.startswith("rego/") and n.endswith(".rego") for n in bundle_files)
    for rel, data in bundle_files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    record = json.loads(base64.b64decode(json.loads(files["decision-record.dsse.json"])["payload"]))
    assert load_bundle(tmp_path).digest == record["predicate"]["decision"]["bundle_digest"]
    assert load_bundle(tmp_path).digest == load_bundle(genuine.policies).digest


def test_every_attachment_is_a_pdfa3_source_file(genuine: Made) -> None:
    with pikepdf.open(genuine.pdf) as pdf:
        meta = pdf.open_metadata()
        assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("3", "B")
        associated = list(pdf.Root.AF)
        assert {str(spec.UF) for spec in associated} == set(attachments(genuine.pdf))
        assert all(spec.AFRelationship == pikepdf.Name.Source for spec in associated)
        assert len(associated) >= 5 + 6  # record, request, 3 envelopes, bundle files


def test_altering_any_attached_file_fails(genuine: Made, org_trust: RootOfTrust, tmp_path: Path) -> None:
    files = attachments(genuine.pdf)
    assert len(files) > 10
    # Every signed file, and one bundle file of each kind (the bundle digest covers them alike).
    chosen = [n for n in sorted(files) if not n.startswith("policy-bundle/")] + [
        "policy-bundle/trust.yaml", "policy-bundle/charter.yaml", "policy-bundle/keys/runtime.pub",
        next(n for n in sorted(files) if n.startswith("policy-bundle/rego/"))]
    for i, name in enumerate(chosen):
        data = files[name]
        bad = rewrite(genuine.pdf, tmp_path / f"{i}.pdf", replace={name: data + b"\n"})
        error = failed(bad, org_trust)
        if name.startswith("policy-bundle/"):
            assert isinstance(error, BundleError), name
        elif name == "decision-record.dsse.json":
            assert isinstance(error, RecordError) and "bytes were changed" in error.message
        else:
            assert isinstance(error, AttachmentsError) and f"changed: {name}" in error.message


def test_an_edited_decision_record_fails(genuine: Made, gate_key: RootOfTrust, tmp_path: Path) -> None:
    env = json.loads(genuine.record)
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["decision"]["outcome"] = "deny"
    env["payload"] = base64.b64encode(canonical_json(statement)).decode()
    edited = json.dumps(env, indent=2, sort_keys=True).encode() + b"\n"
    bad = rewrite(genuine.pdf, tmp_path / "edited.pdf", replace={"decision-record.dsse.json": edited})
    error = failed(bad, gate_key)
    assert isinstance(error, RecordError) and "signature" in error.message


def test_a_record_signed_by_another_gate_key_fails(genuine: Made, gate_key: RootOfTrust,
                                                   org_trust: RootOfTrust, tmp_path: Path) -> None:
    payload = base64.b64decode(json.loads(genuine.record)["payload"])
    forged = sign_envelope(payload, [SigningKey.generate("ed25519")]).to_json()
    bad = rewrite(genuine.pdf, tmp_path / "forged.pdf", replace={"decision-record.dsse.json": forged})
    for root in (gate_key, org_trust):
        assert isinstance(failed(bad, root), RecordError)


def test_evidence_resigned_with_a_trust_policy_naming_other_keys_fails(
    session_world: World, genuine: Made, org_trust: RootOfTrust, gate_key: RootOfTrust, tmp_path: Path
) -> None:
    # The forger re-signs better evidence and the decision with keys of their own, and carries a
    # trust policy (bundle) naming those keys: self-consistent, but not under the caller's root.
    policies, keys = other_keys(session_world, tmp_path / "forged-policies", IDENTITIES)
    evidence = resign(session_world, session_world.standard_evidence(), keys)
    forged = make_packet(session_world, tmp_path / "forged", evidence, policies=policies,
                         gate=keys["slmgate-gate"])
    assert verify_packet(forged.pdf, RootOfTrust.from_trust_file(policies / "trust.yaml")).ok
    for root in (org_trust, gate_key):
        assert isinstance(failed(forged.pdf, root), RecordError)
    # Keeping the genuine record and swapping in the re-signed evidence and keys fails too.
    files = attachments(forged.pdf)
    swapped = {n: b for n, b in files.items() if n.startswith(("evidence/", "policy-bundle/keys/"))}
    bad = rewrite(genuine.pdf, tmp_path / "swapped.pdf", replace=swapped)
    error = failed(bad, org_trust)
    assert isinstance(error, AttachmentsError) and "evidence/eval-result.dsse.json" in error.message


def test_a_gate_signed_bundle_with_keys_the_caller_does_not_trust_fails(
    session_world: World, org_trust: RootOfTrust, gate_key: RootOfTrust, tmp_path: Path
) -> None:
    policies, keys = other_keys(session_world, tmp_path / "policies", ("eval-harness", "runtime"))
    evidence = resign(session_world, session_world.standard_evidence(), keys)
    made = make_packet(session_world, tmp_path / "p", evidence, policies=policies)
    error = failed(made.pdf, org_trust)
    assert isinstance(error, BundleError)
    assert "does not trust: eval-harness, runtime" in error.message
    # With only the gate's key as root, the gate's signature over the bundle digest vouches for it.
    assert verify_packet(made.pdf, gate_key).ok


def test_a_record_the_inputs_do_not_support_fails_on_replay(
    genuine: Made, session_world: World, gate_key: RootOfTrust, tmp_path: Path
) -> None:
    # A (compromised or buggy) gate signs a decision that does not follow from the evidence.
    statement = json.loads(base64.b64decode(json.loads(genuine.record)["payload"]))
    statement["predicate"]["decision"]["checks"] = statement["predicate"]["decision"]["checks"][:-1]
    record = sign_envelope(canonical_json(statement), [session_world.key("slmgate-gate")]).to_json()
    bad = rewrite(genuine.pdf, tmp_path / "unsupported.pdf", replace={"decision-record.dsse.json": record})
    error = failed(bad, gate_key)
    assert isinstance(error, ReplayError) and "checks" in error.message


def test_a_cover_that_disagrees_with_the_signed_record_fails(
    genuine: Made, session_world: World, gate_key: RootOfTrust, tmp_path: Path
) -> None:
    # The gate's genuine signature on a record that says deny, in a packet whose cover says APPROVE.
    statement = json.loads(base64.b64decode(json.loads(genuine.record)["payload"]))
    statement["predicate"]["decision"]["outcome"] = "deny"
    record = sign_envelope(canonical_json(statement), [session_world.key("slmgate-gate")]).to_json()
    bad = rewrite(genuine.pdf, tmp_path / "cover.pdf", replace={"decision-record.dsse.json": record})
    error = failed(bad, gate_key)
    assert isinstance(error, VisibleDecisionError)
    assert "shows outcome APPROVE, the signed record says DENY" in error.message


def test_extra_and_unsafe_attachments_fail(genuine: Made, gate_key: RootOfTrust, tmp_path: Path) -> None:
    for i, (name, kind) in enumerate([("notes.txt", AttachmentsError),
                                      ("policy-bundle/../escape.yaml", AttachmentsError),
                                      ("policy-bundle/extra.yaml", BundleError)]):
        bad = rewrite(genuine.pdf, tmp_path / f"{i}.pdf", add={name: b"x: 1\n"})
        error = failed(bad, gate_key)
        assert isinstance(error, kind), (name, error)


def test_evidence_refused_at_decision_time_verifies_as_recorded(
    session_world: World, gate_key: RootOfTrust, tmp_path: Path
) -> None:
    evidence = session_world.standard_evidence()
    env = json.loads(evidence["eval-result"])
    env["signatures"][0]["sig"] = base64.b64encode(b"\0" * 64).decode()
    evidence["eval-result"] = json.dumps(env).encode()
    made = make_packet(session_world, tmp_path, evidence)
    report = verify_packet(made.pdf, gate_key)
    assert report.ok, report.text()
    assert report.decision["outcome"] == "deny"
    assert "refused as recorded: eval-result" in report.text()


def test_unreadable_input_is_an_input_error(tmp_path: Path, gate_key: RootOfTrust) -> None:
    (tmp_path / "x.pdf").write_bytes(b"not a pdf at all")
    with pytest.raises(InputError, match="not a readable PDF"):
        verify_packet(tmp_path / "x.pdf", gate_key)
    with pytest.raises(InputError, match="not found"):
        verify_packet(tmp_path / "missing.pdf", gate_key)
    with pytest.raises(InputError):
        RootOfTrust.from_trust_file(tmp_path / "x.pdf")
    with pytest.raises(InputError, match="PEM"):
        RootOfTrust.from_gate_key(tmp_path / "x.pdf")
