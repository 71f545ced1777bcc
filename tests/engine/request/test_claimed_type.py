"""What an envelope claims before verification (its predicateType), read once per evidence file
however many steps ask: the subject binding verification applies, and what the approval digest
leaves out."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request
from slmgate.engine.policy._training import binds_to_weights
from slmgate.engine.request import _request
from slmgate.engine.request._request import EvidenceFile, approval_digest, claimed_predicate_type
from slmgate.evidence import PREDICATE_TYPES, sign_envelope
from tests.conftest import NOW, World

FAMILY = ["model_family_change"]  # the tier that needs two signed approvals


def test_a_promotion_with_approvals_reads_each_claim_once(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    evidence = world.standard_evidence()
    evidence["rollback-plan"] = world.rollback_plan()
    items = [{"ref": k, "path": f"{k}.dsse.json"} for k in evidence]
    doc = world.request_doc("req-claims", FAMILY, items)
    for i, signer in enumerate(("ml-lead", "release-manager")):
        evidence[f"approval-{i}"] = world.approval(signer, doc, evidence)
    request = load_request(world.request(tmp_path / "req", evidence, change_classes=FAMILY,
                                         rid="req-claims"))
    reads: Counter[bytes] = Counter()

    def counted(raw: bytes) -> str | None:
        reads[raw] += 1
        return claimed_predicate_type(raw)

    monkeypatch.setattr(_request, "claimed_predicate_type", counted)
    bundle = load_bundle(world.policies)
    decision = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW).decision
    assert decision.outcome == "approve", decision.findings  # both approvals bound to the digest
    assert sorted(reads.values()) == [1] * len(evidence)
    assert set(reads) == set(evidence.values())


def test_the_digest_is_the_same_with_claims_read_before(world: World) -> None:
    evidence = world.standard_evidence()
    items = [{"ref": k, "path": f"{k}.dsse.json"} for k in evidence]
    doc = world.request_doc("req-claims", FAMILY, items)
    evidence["approval-0"] = world.approval("ml-lead", doc, evidence)
    doc["evidence"].append({"ref": "approval-0", "path": "approval-0.dsse.json"})
    claimed = {ref: claimed_predicate_type(raw) for ref, raw in evidence.items()}
    assert claimed["approval-0"] == PREDICATE_TYPES["approval"]
    assert approval_digest(doc, evidence, claimed=claimed) == approval_digest(doc, evidence)
    # the approval is left out by its claim: a claim saying otherwise puts it in
    other = {**claimed, "approval-0": PREDICATE_TYPES["eval-result"]}
    assert approval_digest(doc, evidence, claimed=other) != approval_digest(doc, evidence)


@pytest.mark.parametrize("raw", [
    b"not json", b"{}", b'{"payload": "e30=", "payloadType": "t", "signatures": [{"sig": "AA=="}]}',
    b'{"payload": "WzFd", "payloadType": "t", "signatures": [{"sig": "AA=="}]}',  # payload [1]
    b'{"payload": "eyJwcmVkaWNhdGVUeXBlIjogMX0=", "payloadType": "t", "signatures": [{"sig": "AA=="}]}',
])
def test_an_unreadable_claim_is_none_and_binds_to_the_weights(raw: bytes) -> None:
    assert claimed_predicate_type(raw) is None
    assert binds_to_weights(EvidenceFile("e", Path("e"), raw))


def test_only_a_claimed_data_card_is_verified_unbound(world: World) -> None:
    card = world.data_card("tickets_scrubbed")
    run = world.training_run(["tickets_scrubbed"])
    assert not binds_to_weights(EvidenceFile("card", Path("card"), card))
    assert binds_to_weights(EvidenceFile("run", Path("run"), run))
    unsigned = sign_envelope(b'{"predicateType": "%s"}' % PREDICATE_TYPES["data-card"].encode(),
                             [world.key("data-owner")]).to_json()
    assert claimed_predicate_type(unsigned) == PREDICATE_TYPES["data-card"]


def _unsigned(kind: str) -> bytes:
    payload = base64.b64encode(b'{"predicateType": "https://t/%s"}' % kind.encode())
    return b'{"payload": "%s", "payloadType": "t", "signatures": [{"sig": "AA=="}]}' % payload


def test_envelopes_one_byte_apart_are_each_read_as_themselves() -> None:
    """Envelopes already read are remembered by their bytes (what-if reads one stored envelope
    for every decision holding it): one byte apart is another envelope, read for itself."""
    a, b = _unsigned("a"), _unsigned("b")
    assert sum(x != y for x, y in zip(a, b, strict=True)) == 1
    broken = a.replace(b'"payloadType"', b'"payloadTypf"')
    assert sum(x != y for x, y in zip(a, broken, strict=True)) == 1
    for raw in (a, b, broken, a, b, broken):
        assert claimed_predicate_type(raw) == {a: "https://t/a", b: "https://t/b", broken: None}[raw]
    assert _request._kept(a) == a and _request._kept(b) == b
    kept = _request._kept(broken)
    assert kept != broken and _request.withheld_reason(kept) is not None
    assert "payloadType" in _request.withheld_reason(kept)  # type: ignore[operator]


def test_bytes_that_are_not_an_envelope_are_never_remembered() -> None:
    secret = b"-----not an envelope, maybe a secret-----"
    assert _request._kept(secret) != secret
    assert claimed_predicate_type(secret) is None
    assert secret not in _request._READ
    envelope = _unsigned("c")
    assert claimed_predicate_type(envelope) == "https://t/c" and envelope in _request._READ
