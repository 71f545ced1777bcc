"""Re-verify an auditor packet offline from what it carries, against the caller's root of trust.

The packet's own trust policy is never the root of trust: the decision record must verify under
the caller's trust policy or gate key, and the gate's signature over the record's bundle digest
is what vouches for the policy bundle (and its trust policy) carried inside. Exceptions::

    EvidenceInvalid
    └── PacketTampered           the packet does not verify; ``step`` names where
        ├── RecordError          decision-record: not a decision record signed under your root of trust
        ├── VisibleDecisionError visible-decision: the printed outcome or id is not the signed one
        ├── AttachmentsError     attachments: files missing, extra, repeated or not the signed bytes
        ├── BundleError          policy-bundle: not the bundle decided under, or keys you do not trust
        ├── ReplayError          replay: re-verification or re-evaluation gives another decision
        └── PagesError           pages: a page is not the page the gate sealed or the record renders to

An unreadable packet, trust file or key is an ``InputError`` (exit 2), not a verdict.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from slmgate.engine.ledger._diff import diff_decisions
from slmgate.engine.packet._files import (
    BUNDLE_PREFIX,
    RECORD_NAME,
    REQUEST_NAME,
    SEAL_NAME,
    bundle_files,
    evidence_name,
)
from slmgate.engine.packet._pages import first_differing_page, page_digests
from slmgate.engine.packet._seal import SealRefused, read_seal
from slmgate.engine.policy._bundle import PolicyBundle, bundle_digest, load_bundle, load_trust_policy
from slmgate.engine.policy._engines import embedded_engine
from slmgate.engine.policy._evaluate import PromotionResult, evaluate_promotion
from slmgate.engine.request._request import PromotionRequest, request_from_parts
from slmgate.evidence import (
    Envelope,
    PublicKey,
    Statement,
    TrustedIdentity,
    TrustPolicy,
    canonical_json,
    parse_time,
    verify_envelope,
)
from slmgate.evidence.errors import EvidenceInvalid, InputError, SignatureError, SlmgateError

__all__ = [
    "AttachmentsError", "BundleError", "PacketReport", "PacketTampered", "PagesError", "RecordError",
    "RecordedDecision", "ReplayError", "RootOfTrust", "VisibleDecisionError", "read_record",
    "replay_record", "verify_packet",
]

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
_REFUSED_NAMED = 10  # refused envelopes named in the report line; the packet's Appendix A lists all
_OUTCOME_LINE = re.compile(r"Outcome\s+(APPROVE|REVIEW|DENY)\b")


class PacketTampered(EvidenceInvalid):
    step = "packet"


class RecordError(PacketTampered):
    step = "decision-record"


class VisibleDecisionError(PacketTampered):
    step = "visible-decision"


class AttachmentsError(PacketTampered):
    step = "attachments"


class BundleError(PacketTampered):
    step = "policy-bundle"


class ReplayError(PacketTampered):
    step = "replay"


class PagesError(PacketTampered):
    step = "pages"


@dataclass(frozen=True)
class RootOfTrust:
    """What the caller trusts: their organisation's trust policy, or only the gate's key."""

    trust: TrustPolicy
    source: str
    organisation: bool  # a whole trust policy: the carried bundle's keys must all be in it

    @classmethod
    def from_trust_file(cls, path: Path) -> RootOfTrust:
        return cls(load_trust_policy(path), str(path), organisation=True)

    @classmethod
    def from_gate_key(cls, path: Path) -> RootOfTrust:
        key = PublicKey.load(path)
        gate = TrustedIdentity("gate", "service", "gate", key, frozenset({"decision-record"}))
        trust = TrustPolicy((gate,), max_age={"decision-record": timedelta(days=365 * 100)})
        return cls(trust, str(path), organisation=False)


@dataclass(frozen=True)
class RecordedDecision:
    """A decision record whose signature verified; ``decision`` is the signed JSON."""

    raw: bytes
    decision: dict[str, Any]
    decided_at: datetime
    signers: tuple[str, ...]
    keys: tuple[PublicKey, ...] = ()  # the trusted keys whose signature on it verified


@dataclass
class PacketReport:
    packet: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    decision: dict[str, Any] = field(default_factory=dict)
    error: PacketTampered | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.steps)

    def passed(self, step: str, detail: str) -> None:
        self.steps.append({"step": step, "ok": True, "detail": detail})

    def to_json(self) -> dict[str, Any]:
        return {"packet": self.packet, "verified": self.ok, "decision": self.decision,
                "steps": self.steps, "failed_step": self.error.step if self.error else None,
                "reason": self.error.message if self.error else None}

    def text(self) -> str:
        d = self.decision
        head = (f"OK: {self.packet} verifies — {str(d.get('outcome')).upper()} {d.get('id')}"
                f" ({d.get('model')}), decided {d.get('decided_at')}" if self.ok else
                f"FAIL: {self.packet} does not verify: {self.error.step if self.error else '?'}: "
                f"{self.error.message if self.error else 'no step ran'}")
        lines = [head] + [f"  {'ok  ' if s['ok'] else 'FAIL'} {s['step']:<17} {s['detail']}"
                          for s in self.steps]
        return "\n".join(lines)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_attachments(pdf: Path) -> tuple[PdfReader, dict[str, list[bytes]]]:
    """The embedded files by name (a name may repeat). Unreadable: ``InputError``."""
    try:
        reader = PdfReader(pdf)
        files = {str(name): [bytes(b) for b in blobs] for name, blobs in reader.attachments.items()}
    except FileNotFoundError as exc:
        raise InputError("packet not found", file=str(pdf)) from exc
    except Exception as exc:  # pypdf raises many types on malformed input
        raise InputError(f"not a readable PDF ({type(exc).__name__}: {exc})", file=str(pdf)) from exc
    return reader, files


def read_record(raw: bytes, trust: TrustPolicy, source: str) -> RecordedDecision:
    """Verify a decision record under ``trust`` as of the time it was signed; return what it says."""
    try:
        envelope = Envelope.from_json(raw)
        if not envelope.keys_that_signed(i.key for i in trust.identities):
            raise SignatureError(f"none of {len(envelope.signatures)} signature(s) verifies under "
                                 f"a key of {source}")
        statement = Statement.parse(envelope.payload)  # bytes whose signature verified
        ev = verify_envelope(raw, trust, subject_sha256=statement.subjects[0][1],
                             now=statement.issued_at, ref="decision-record")
    except EvidenceInvalid as exc:
        raise RecordError(f"the decision record does not verify under {source}: "
                          f"{exc.step}: {exc.message}") from exc
    if envelope.to_json() != raw:
        raise RecordError("the decision record is not byte for byte the envelope the gate wrote "
                          "(its signed content verifies, but its bytes were changed)")
    predicate = ev.statement.predicate
    decision = predicate.get("decision")
    if ev.kind != "decision-record" or not isinstance(decision, dict):
        raise RecordError(f"the signed statement is a {ev.kind}, not a decision record")
    try:
        model_digest = decision["request"]["model"]["weights_digest"]
        decided_at = parse_time(predicate.get("decided_at"), what="decided_at")
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"the decision record is malformed ({exc})") from exc
    if model_digest != f"sha256:{ev.statement.subjects[0][1]}" or decision.get("evaluated_at") != \
            predicate.get("decided_at"):
        raise RecordError("the decision record's subject or time disagrees with its decision")
    signers = tuple(f"{s.name} ({s.role}, {s.kind})" for s in ev.signers)
    return RecordedDecision(raw, decision, decided_at, signers, tuple(s.key for s in ev.signers))


def replay_record(record: RecordedDecision, request_raw: bytes, evidence: Mapping[str, bytes],
                  bundle: PolicyBundle) -> tuple[PromotionRequest, PromotionResult, str]:
    """Rebuild the request from its recorded bytes, re-verify every envelope against the bundle's
    trust policy at the decision time and re-evaluate the policy; anything but the recorded
    decision is a ``ReplayError``. Returns the request, the result and a one-line evidence note."""
    recorded = record.decision
    if bundle.digest != recorded.get("bundle_digest"):
        raise BundleError(f"the policy bundle hashes to {bundle.digest}, the decision was made "
                          f"under {recorded.get('bundle_digest')}")
    if any(e.get("failed_step") == "weights-binding" for e in recorded.get("evidence", [])):
        raise ReplayError("the decision was refused at weights-binding (re-hashing the weights "
                          "directory); the weights are not recorded, so it cannot be replayed")
    try:
        request = request_from_parts(request_raw, dict(evidence), source=REQUEST_NAME)
        result = evaluate_promotion(request, bundle, embedded_engine(bundle),
                                    now=record.decided_at, bind_weights=False)
    except SlmgateError as exc:
        raise ReplayError(f"the recorded request cannot be replayed: {exc.message}") from exc
    replayed = json.loads(canonical_json(result.decision.to_json()))
    ev_then = {e["ref"]: e for e in recorded.get("evidence", [])}
    ev_now = {e["ref"]: e for e in replayed["evidence"]}
    moved = sorted(ref for ref in set(ev_then) | set(ev_now) if ev_then.get(ref) != ev_now.get(ref))
    if moved:
        detail = "; ".join(f"{ref}: recorded {_verdict(ev_then.get(ref))}, now {_verdict(ev_now.get(ref))}"
                           for ref in moved)
        raise ReplayError(f"re-verifying the evidence gives other results: {detail}")
    if diffs := diff_decisions(recorded, replayed):  # the ledger's replay comparison, shared
        raise ReplayError("re-evaluating the policy gives another decision: "
                          + "; ".join(map(str, diffs)))
    refused = sorted(ref for ref, e in ev_now.items() if not e["verified"])
    named = ", ".join(refused[:_REFUSED_NAMED]) + (f" and {len(refused) - _REFUSED_NAMED} more"
                                                  if len(refused) > _REFUSED_NAMED else "")
    note = (f"{len(ev_now)} envelope(s) re-verified at {recorded['evaluated_at']}: "
            f"{len(ev_now) - len(refused)} verified"
            + (f", {len(refused)} refused as recorded: {named}" if refused else ""))
    return request, result, note


def _verdict(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "absent"
    if entry["verified"]:
        return f"verified (sha256:{str(entry.get('envelope_sha256'))[:12]}…)"
    return f"refused at {entry.get('failed_step')}"


def _visible(reader: PdfReader, decision: Mapping[str, Any]) -> str:
    try:
        cover = reader.pages[0].extract_text() if reader.pages else ""
    except Exception as exc:  # a page pypdf cannot read is a cover nobody can check
        raise VisibleDecisionError(f"the cover page cannot be read ({exc})") from exc
    shown = _OUTCOME_LINE.findall(cover)
    want = str(decision.get("outcome", "")).upper()
    if shown != [want]:
        raise VisibleDecisionError(f"the cover shows outcome {', '.join(shown) or 'none'}, "
                                   f"the signed record says {want}")
    if str(decision.get("id")) not in cover:
        raise VisibleDecisionError(f"the cover does not show the signed decision id {decision.get('id')}")
    return f"cover shows {want} {decision.get('id')}"


def _attachments(files: Mapping[str, list[bytes]], decision: Mapping[str, Any]) -> dict[str, bytes]:
    expected = {REQUEST_NAME: decision.get("request", {}).get("digest")}
    for e in decision.get("evidence", []):
        if e.get("envelope_sha256"):
            expected[evidence_name(e["ref"])] = f"sha256:{e['envelope_sha256']}"
    repeated = sorted(n for n, blobs in files.items() if len(blobs) != 1)
    present = {n: blobs[0] for n, blobs in files.items() if len(blobs) == 1}
    bundle = [n for n in present if n.startswith(BUNDLE_PREFIX)]
    unsafe = sorted(n for n in bundle if not _SAFE_PATH.match(n[len(BUNDLE_PREFIX):])
                    or ".." in n.split("/"))
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected) - set(bundle) - {RECORD_NAME, SEAL_NAME})
    changed = sorted(n for n, want in expected.items() if n in present and _sha256(present[n]) != want)
    problems = [f"{label}: {', '.join(names)}" for label, names in (
        ("missing", missing), ("extra", extra), ("changed", changed), ("repeated", repeated),
        ("unsafe names", unsafe)) if names]
    if not bundle:
        problems.append(f"missing: {BUNDLE_PREFIX}* (the policy bundle as decided)")
    if problems:
        raise AttachmentsError("; ".join(problems))
    return present


def _check_keys(bundle: PolicyBundle, root: RootOfTrust) -> str:
    if not root.organisation:
        return f"vouched for by the gate's signature over its digest ({root.source})"
    mine = {i.key.keyid: i.name for i in root.trust.identities}
    foreign = sorted(i.name for i in bundle.trust.identities if i.key.keyid not in mine)
    revoked = sorted(i.name for i in bundle.trust.identities if i.key.keyid in root.trust.revoked_keyids)
    if foreign:
        raise BundleError(f"the carried trust policy names keys that {root.source} does not trust: "
                          f"{', '.join(foreign)}")
    if revoked:
        raise BundleError(f"the carried trust policy uses keys {root.source} revokes: {', '.join(revoked)}")
    return f"its {len(bundle.trust.identities)} trust identities' keys are all in {root.source}"


def verify_packet(pdf: Path, root: RootOfTrust, *, rerender: bool = False) -> PacketReport:
    """Re-verify ``pdf`` from what it carries; the report names the first step that failed.

    Steps, in order, each with its own exception (all ``PacketTampered``):

    1. read the PDF and its embedded files                               InputError (exit 2)
    2. decision-record: signed under the caller's root of trust, a decision-record statement
       whose subject is the decided weights                              RecordError
    3. visible-decision: the cover prints the signed outcome and id     VisibleDecisionError
    4. attachments: the request and every envelope are the bytes the record's digests name;
       nothing missing, extra, repeated or outside ``policy-bundle/`` (the one file allowed
       besides them is the packet seal)                                  AttachmentsError
    5. policy-bundle: the carried files load as a bundle whose digest is the record's, with no
       file outside it; with an organisation trust policy, every key it names is trusted there
                                                                          BundleError
    6. replay: every envelope re-verified against the carried trust policy at the decision time,
       and the policy re-evaluated on the rebuilt request, give the recorded decision  ReplayError
    7. pages: every page is exactly (same number of pages, each page's content streams and the
       resources they draw) the page the gate sealed — a seal signed by a key that signed the
       record, about this record — and, for a packet without a seal or with ``rerender``, the
       page that re-rendering the signed record, the request, the envelopes and the bundle
       gives; the first page that differs is named (``_pages`` says why both ways exist; a
       seal that does not verify is a refusal in either mode)            PagesError
    """
    report = PacketReport(str(pdf))
    reader, files = read_attachments(pdf)
    try:
        blobs = files.get(RECORD_NAME, [])
        if len(blobs) != 1:
            raise RecordError(f"the packet carries {len(blobs)} {RECORD_NAME}, exactly 1 needed")
        record = read_record(blobs[0], root.trust, root.source)
        d = record.decision
        model = d["request"]["model"]
        report.decision = {"id": d.get("id"), "outcome": d.get("outcome"),
                           "model": f"{model.get('name')} {model.get('version')}",
                           "decided_at": d.get("evaluated_at"), "bundle_digest": d.get("bundle_digest")}
        report.passed("decision-record", f"signed by {', '.join(record.signers)}, trusted by {root.source}")
        report.passed("visible-decision", _visible(reader, d))
        present = _attachments(files, d)
        carried = {n[len(BUNDLE_PREFIX):]: b for n, b in present.items() if n.startswith(BUNDLE_PREFIX)}
        evidence = {n[len("evidence/"):-len(".dsse.json")]: b for n, b in present.items()
                    if n.startswith("evidence/") and n.endswith(".dsse.json")}
        report.passed("attachments", f"request and {len(evidence)} envelope(s) are the signed bytes; "
                                     f"{len(carried)} policy file(s) carried")
        with tempfile.TemporaryDirectory(prefix="slmgate-packet-") as tmp:
            bundle = _carried_bundle(Path(tmp), carried, d)
            report.passed("policy-bundle", f"{bundle.digest} as recorded; {_check_keys(bundle, root)}")
            request, result, note = replay_record(record, present[REQUEST_NAME], evidence, bundle)
            report.passed("evidence", note)
            r = result.decision
            report.passed("replay", f"{r.outcome} on the {r.tier} tier, {len(r.checks)} checks, "
                                    f"{len(r.findings)} finding(s) — identical to the signed record")
            report.passed("pages", _pages(reader, present.get(SEAL_NAME), record, request, result,
                                          bundle, Path(tmp), rerender))
    except PacketTampered as exc:
        report.error = exc
        report.steps.append({"step": exc.step, "ok": False, "detail": exc.message})
    return report


def _pages(reader: PdfReader, seal_raw: bytes | None, record: RecordedDecision,
           request: PromotionRequest, result: PromotionResult, bundle: PolicyBundle, tmp: Path,
           rerender: bool) -> str:
    """Step 7: compare page by page with the gate's seal and/or a re-render of what the record binds."""
    actual = page_digests(reader)
    said = []
    if seal_raw is not None:
        try:
            seal = read_seal(seal_raw, record.raw, str(record.decision.get("id")), record.keys)
        except SealRefused as exc:
            raise PagesError(f"the packet seal is refused: {exc}") from exc
        _same_pages(seal.pages, actual, "the gate sealed", "is not the page the gate sealed "
                    "(a page edited, overlaid, spliced in, dropped or reordered after sealing)")
        said.append(f"all {len(actual)} page(s) are the pages the gate sealed (signed by the key "
                    "that signed the record)")
    if rerender or seal_raw is None:
        expected = page_digests(_rerendered(record, request, result, bundle, tmp))
        _same_pages(expected, actual, "the signed record renders to",
                    "is not the page it renders to (a page edited, overlaid, spliced in, dropped or "
                    "reordered — or a packet rendered by another slmgate, WeasyPrint or font set)")
        said.append(f"all {len(actual)} page(s) are the pages the signed record renders to")
    return "; ".join(said)


def _same_pages(expected: list[str] | tuple[str, ...], actual: list[str], source: str, why: str) -> None:
    page = first_differing_page(expected, actual)
    if page is not None:
        what = ("is missing" if page > len(actual) else "is extra" if page > len(expected)
                else "differs")
        raise PagesError(f"page {page} {what}: the packet has {len(actual)} page(s), {source} "
                         f"{len(expected)}, and page {page} {why}")


def _rerendered(record: RecordedDecision, request: PromotionRequest, result: PromotionResult,
                bundle: PolicyBundle, tmp: Path) -> Path:
    """The packet rendered again from what the signed record binds (without a seal: the pages
    are the same either way)."""
    import dataclasses

    from slmgate.engine.packet._content import packet_attachments, packet_content
    from slmgate.engine.packet._render import render_packet

    decision = dataclasses.replace(result.decision,
                                   policy_revision=record.decision.get("policy_revision"))
    expected_pdf = tmp / "expected-packet.pdf"
    render_packet(packet_content(decision, result.facts, bundle, result.verified),
                  packet_attachments(request, record.raw, decision, bundle), expected_pdf)
    return expected_pdf


def _carried_bundle(root: Path, carried: Mapping[str, bytes], decision: Mapping[str, Any]) -> PolicyBundle:
    """The carried files hashed first, exactly as carried, and parsed only when they are the
    bundle the signed record names: a hostile file (a YAML "billion laughs", say) never reaches
    a parser."""
    if (digest := bundle_digest(carried)) != decision.get("bundle_digest"):
        raise BundleError(f"the carried policy bundle hashes to {digest}, the signed record "
                          f"names {decision.get('bundle_digest')} (checked before parsing it)")
    for rel, data in sorted(carried.items()):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    try:
        bundle = load_bundle(root)
    except InputError as exc:
        raise BundleError(f"the carried policy bundle does not load: {exc.message}") from exc
    if bundle.digest != decision.get("bundle_digest"):
        raise BundleError(f"the carried policy bundle hashes to {bundle.digest}, the signed record "
                          f"names {decision.get('bundle_digest')}")
    outside = sorted(set(carried) - {rel for rel, _ in bundle_files(bundle)})
    if outside:
        raise BundleError(f"files outside the bundle digest: {', '.join(outside)}")
    return bundle


