"""OSCAL assessment results for one recorded decision.

- **Findings**: one per rule checked (and per blocking finding without a check), each naming in
  ``control-id`` props the controls its rule evidences — the mapping the packet prints
  (``engine.policy._controls``, one table for both).
- **Reviewed controls**: every control of that mapping, listed by id, one selection per framework.
- **Parties and roles**: the gate is the assessing tool (an assessment-assets component, the
  actor of every observation); the requester and the approvers (the signers of verified
  approvals that approve this request) are parties with their roles.
- **Observations**: one per piece of evidence (and for the request and the decision record).
- **Resources**: the chain entry, the decision record, the request, each evidence envelope and
  each file of the policy bundle, by their path in the ledger (``href``, relative to the ledger's
  root) and always with their SHA-256, so each resolves in the ledger and can be checked anywhere.

Plain JSON built here, not with compliance-trestle's pydantic models (measured, bench/bench_oscal.py
and docs/benchmarks.md): trestle would add 24 packages (31 MB, SSH and spreadsheet libraries
among them) to a compliance gate's runtime and 2.3× the import time of this command, and its
generated class names change between releases (``ControlSelection`` is a deprecated alias in
5.x). It stays a dev dependency: the tests read every export with trestle's models. UUIDs are
derived from the decision id, so the same decision always exports the same bytes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import yaml

from slmgate.engine.ledger._history import RecordedDecision
from slmgate.engine.ledger._store import (
    LedgerError,
    bundle_prefix,
    evidence_path,
    files_digest,
    record_path,
    request_path,
    sha256_hex,
)
from slmgate.engine.policy._controls import CONTROLS, controls_for
from slmgate.evidence import Envelope, Statement
from slmgate.evidence.errors import EvidenceInvalid

__all__ = ["OSCAL_VERSION", "assessment_results"]

OSCAL_VERSION = "1.1.2"
NS = "https://slmgate.dev/ns/oscal"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://slmgate.dev/oscal/assessment-results")
ROLES = {
    "assessor": "Assessor: the slmgate gate, which verified the evidence and decided",
    "requester": "Requester of the promotion",
    "approver": "Approver: signed an approval of this promotion request",
}
# How the gate writes a verified envelope's signer (``VerificationResult.signers``).
_SIGNER = re.compile(r"^(?P<name>.+) \((?P<role>[^,()]+), (?P<kind>service|person)(?:: (?P<person>.+))?\)$")


def _props(**values: Any) -> list[dict[str, str]]:
    return [{"name": k.replace("_", "-"), "value": str(v), "ns": NS}
            for k, v in values.items() if v not in (None, "")]


class _Ids:
    def __init__(self, decision_id: str) -> None:
        self.decision_id = decision_id

    def __call__(self, *parts: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, "/".join((self.decision_id, *parts))))


def _resource(ids: _Ids, key: str, title: str, files: Mapping[str, str],
              **props: Any) -> dict[str, Any]:
    """A back-matter resource: its files (ledger path -> sha256 hex) as rlinks with their hash."""
    resource: dict[str, Any] = {
        "uuid": ids("resource", key), "title": title,
        "rlinks": [{"href": href, "hashes": [{"algorithm": "SHA-256", "value": digest}]}
                   for href, digest in sorted(files.items())],
    }
    if props:
        resource["props"] = _props(**props)
    return resource


def _resources(recorded: RecordedDecision, ids: _Ids,
               bundle_files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    m = recorded.manifest
    prefix = bundle_prefix(m.bundle_digest)
    if files_digest(bundle_files) != m.bundle_digest:  # never hash-link files it was not decided under
        raise LedgerError(f"{prefix} does not match the bundle digest entry {recorded.entry_path} "
                          "records", advice="run `slmgate ledger verify`")
    return [
        _resource(ids, "bundle", f"policy bundle {m.bundle_digest}",
                  {prefix + rel: sha256_hex(data) for rel, data in bundle_files.items()},
                  bundle_digest=m.bundle_digest, policy_revision=m.policy_revision),
        _resource(ids, "entry", f"ledger chain entry {m.seq}",
                  {recorded.entry_path: sha256_hex(recorded.entry)}),
        _resource(ids, "request", "promotion request", {request_path(m.decision_id): m.request_sha256}),
        _resource(ids, "record", "signed decision record", {record_path(m.decision_id): m.record_sha256}),
        *(_resource(ids, f"evidence/{h}", f"evidence envelope {ref}", {evidence_path(h): h})
          for ref, h in dict(m.evidence).items()),
    ]


def _approvals(recorded: RecordedDecision, evidence: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Who approved, as (evidence ref, principal, role): each signer of a verified approval of
    this request whose predicate says ``approve``, by principal (the person holding the key, else
    the identity). A signed rejection, or an approval of another request, names no approver."""
    request_id = (recorded.decision.get("request") or {}).get("id")
    found = []
    for e in evidence:
        raw = recorded.evidence.get(str(e.get("ref")))
        if e.get("kind") != "approval" or not e.get("verified") or raw is None:
            continue
        try:
            predicate = Statement.parse(Envelope.from_json(raw).payload).predicate
        except EvidenceInvalid:  # verified when decided; unreadable now names nobody
            continue
        if predicate.get("decision") != "approve" or predicate.get("request_id") != request_id:
            continue
        for signer in e.get("signers") or []:
            parsed = _SIGNER.match(signer)
            if parsed:
                found.append((str(e["ref"]), parsed["person"] or parsed["name"], parsed["role"]))
    return found


def _emails(bundle_files: Mapping[str, bytes]) -> dict[str, str]:
    """The e-mail of each identity and person of the bundle's trust.yaml that declares one."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x the pure-Python one
        identities = yaml.load(bundle_files.get("trust.yaml", b""), Loader=loader).get("identities") or {}
    except (yaml.YAMLError, AttributeError):
        return {}
    return {who: str(ident["email"]) for name, ident in identities.items()
            if isinstance(ident, dict) and ident.get("email")
            for who in (name, ident.get("person") or name)}


def _parties(ids: _Ids, requester: str | None, approvals: list[tuple[str, str, str]],
             emails: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metadata parties and responsible parties (role -> party uuids)."""
    parties, responsible = [], []
    approvers: dict[str, list[str]] = {}
    for _, principal, role in approvals:
        roles = approvers.setdefault(principal, [])
        if role not in roles:
            roles.append(role)
    if requester:
        party: dict[str, Any] = {"uuid": ids("party", "requester", requester), "type": "person",
                                 "name": requester}
        if "@" in requester:
            party["email-addresses"] = [requester]
        parties.append(party)
        responsible.append({"role-id": "requester", "party-uuids": [party["uuid"]]})
    for principal, roles in sorted(approvers.items()):
        party = {"uuid": ids("party", "approver", principal), "type": "person", "name": principal,
                 "props": _props(approval_role=", ".join(roles))}
        if principal in emails:
            party["email-addresses"] = [emails[principal]]
        parties.append(party)
    if approvers:
        responsible.append({"role-id": "approver",
                            "party-uuids": [ids("party", "approver", p) for p in sorted(approvers)]})
    return parties, responsible


def _evidence_observation(ids: _Ids, e: dict[str, Any], collected: str,
                          origins: list[dict[str, Any]]) -> dict[str, Any]:
    if e.get("verified"):
        text = (f"{e.get('kind')} envelope {e.get('ref')!r} verified against the trust policy; "
                f"signed by {', '.join(e.get('signers') or [])}; issued {e.get('issued_at')}")
    else:
        text = (f"envelope {e.get('ref')!r} refused at step {e.get('failed_step')}: {e.get('reason')}")
    obs: dict[str, Any] = {
        "uuid": ids("observation", "evidence", str(e.get("ref"))), "title": f"evidence {e.get('ref')}",
        "description": text, "methods": ["TEST"], "origins": origins, "collected": collected,
        "props": _props(evidence_ref=e.get("ref"), kind=e.get("kind"),
                        verified=str(bool(e.get("verified"))).lower()),
    }
    if e.get("envelope_sha256"):
        obs["relevant-evidence"] = [{
            "href": f"#{ids('resource', 'evidence', str(e['envelope_sha256']))}",
            "description": f"DSSE envelope {evidence_path(str(e['envelope_sha256']))} in the ledger"}]
    return obs


def _reviewed_controls() -> dict[str, Any]:
    frameworks: dict[str, list[str]] = {}
    for c in CONTROLS:
        ids = frameworks.setdefault(c.framework, [])
        if c.control_id not in ids:
            ids.append(c.control_id)
    return {
        "description": "The controls slmgate's control mapping assesses for every promotion "
                       "(the packet's control table); each finding names the ones it evidences.",
        "control-selections": [{
            "description": f"{framework} controls",
            "props": _props(framework=framework),
            "include-controls": [{"control-id": i} for i in control_ids],
        } for framework, control_ids in frameworks.items()],
    }


def _finding_controls(rule_id: str) -> list[dict[str, str]]:
    """One ``control-id`` prop per control the rule evidences: its framework as the class, the
    control as the packet prints it and the aspects evidenced as remarks."""
    seen: dict[str, dict[str, str]] = {}
    for c in controls_for(rule_id):
        prop = seen.setdefault(c.control_id, {"name": "control-id", "value": c.control_id,
                                              "class": c.framework_id, "ns": NS,
                                              "remarks": f"{c.framework} {c.control}: {c.title}"})
        if c.title not in prop["remarks"]:
            prop["remarks"] += f"; {c.title}"
    return list(seen.values())


def assessment_results(recorded: RecordedDecision,
                       bundle_files: Mapping[str, bytes]) -> dict[str, Any]:
    """The decision as an OSCAL assessment-results document (``{"assessment-results": ...}``);
    ``bundle_files`` are the files of the bundle it was decided under, as the ledger keeps them."""
    d, m = recorded.decision, recorded.manifest
    ids = _Ids(recorded.decision_id)
    at = str(d.get("evaluated_at"))
    request = d.get("request") or {}
    model = request.get("model") or {}
    evidence = [e for e in d.get("evidence") or [] if isinstance(e, dict)]

    gate = ids("component", "slmgate")
    by_gate = [{"actors": [{"type": "tool", "actor-uuid": gate, "role-id": "assessor"}]}]
    approvals = _approvals(recorded, evidence)
    parties, responsible = _parties(ids, request.get("requested_by"), approvals,
                                    _emails(bundle_files) if approvals else {})

    observations = []
    for e in evidence:  # an approval's observation names its approvers beside the gate
        signed = dict.fromkeys(p for ref, p, _ in approvals if ref == e.get("ref"))
        origins = [*by_gate, *({"actors": [{"type": "party", "actor-uuid": ids("party", "approver", p),
                                            "role-id": "approver"}]} for p in signed)]
        observations.append(_evidence_observation(ids, e, at, origins))
    for key, title in (("request", "promotion request"), ("record", "decision record")):
        observations.append({
            "uuid": ids("observation", key), "title": title, "methods": ["EXAMINE"],
            "origins": by_gate, "collected": at, "description": f"the {title} as kept in the ledger",
            "relevant-evidence": [{"href": f"#{ids('resource', key)}", "description": title}],
        })

    def related(ref: str | None) -> list[dict[str, str]]:
        if ref == "evidence":
            chosen = list(evidence)
        else:
            chosen = [e for e in evidence if ref in (e.get("ref"), e.get("kind"))]
        found = [ids("observation", "evidence", str(e.get("ref"))) for e in chosen]
        found = found or [ids("observation", "request" if ref == "request" else "record")]
        return [{"observation-uuid": u} for u in found]

    severity = {f["rule_id"]: f.get("severity") for f in d.get("findings") or []}
    rules = [(c["rule_id"], bool(c.get("passed")), c.get("message", ""), c.get("evidence_ref"))
             for c in d.get("checks") or []]
    checked = {r[0] for r in rules}
    rules += [(f["rule_id"], False, f.get("message", ""), f.get("evidence_ref"))
              for f in d.get("findings") or []
              if f.get("severity") in ("deny", "review") and f["rule_id"] not in checked]
    findings = []
    for rule, passed, message, ref in rules:
        finding: dict[str, Any] = {
            "uuid": ids("finding", rule), "title": rule, "description": message or rule,
            "origins": by_gate,
            "target": {"type": "objective-id", "target-id": rule,
                       "status": {"state": "satisfied" if passed else "not-satisfied"}},
            "related-observations": related(ref),
        }
        props = [*([] if passed else _props(severity=severity.get(rule, "deny"))),
                 *_finding_controls(rule)]
        if props:
            finding["props"] = props
        findings.append(finding)

    result = {
        "uuid": ids("result"),
        "title": f"slmgate decision {recorded.decision_id}: {d.get('outcome')}",
        "description": str(d.get("summary") or d.get("outcome")),
        "start": at, "end": at,
        "props": _props(decision_id=recorded.decision_id, outcome=d.get("outcome"), tier=d.get("tier"),
                        bundle_digest=m.bundle_digest, policy_revision=m.policy_revision),
        "local-definitions": {"assessment-assets": {
            "components": [{
                "uuid": gate, "type": "software", "title": "slmgate",
                "description": "The promotion gate: verifies the signed evidence against the trust "
                               "policy, evaluates the policy bundle and signs the decision record.",
                "props": _props(version=m.slmgate_version or "unknown"),
                "status": {"state": "operational"},
            }],
            "assessment-platforms": [{
                "uuid": ids("platform", "slmgate"), "title": "slmgate promotion gate",
                "uses-components": [{"component-uuid": gate}],
            }],
        }},
        "reviewed-controls": _reviewed_controls(),
        "observations": observations,
        "findings": findings,
    }
    metadata: dict[str, Any] = {
        "title": f"slmgate assessment results: {model.get('name')} {model.get('version')}",
        "last-modified": at, "version": m.slmgate_version or "unknown",
        "oscal-version": OSCAL_VERSION,
        "roles": [{"id": rid, "title": title} for rid, title in ROLES.items()],
    }
    if parties:
        metadata["parties"] = parties
        metadata["responsible-parties"] = responsible
    return {"assessment-results": {
        "uuid": ids("assessment-results"),
        "metadata": metadata,
        "import-ap": {"href": f"#{ids('resource', 'bundle')}",
                      "remarks": "The policy bundle the decision was made under is its assessment plan."},
        "results": [result],
        "back-matter": {"resources": _resources(recorded, ids, bundle_files)},
    }}

