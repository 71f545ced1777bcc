"""OSCAL assessment results for one recorded decision: one finding per rule checked, one
observation per piece of evidence (and for the request and the decision record), each pointing
to the ledger file it came from through a back-matter resource with its SHA-256.

Plain JSON, written without compliance-trestle (a dev dependency that checks it in tests).
UUIDs are derived from the decision id, so the same decision always exports the same bytes.
"""

from __future__ import annotations

import uuid
from typing import Any

from slmgate.engine.ledger._history import RecordedDecision
from slmgate.engine.ledger._store import bundle_prefix, evidence_path, record_path, request_path

OSCAL_VERSION = "1.1.2"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://slmgate.dev/oscal/assessment-results")


def _props(**values: Any) -> list[dict[str, str]]:
    return [{"name": k.replace("_", "-"), "value": str(v), "ns": "https://slmgate.dev/ns/oscal"}
            for k, v in values.items() if v not in (None, "")]


class _Ids:
    def __init__(self, decision_id: str) -> None:
        self.decision_id = decision_id

    def __call__(self, *parts: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, "/".join((self.decision_id, *parts))))


def _resource(ids: _Ids, key: str, title: str, href: str, sha256: str | None) -> dict[str, Any]:
    rlink: dict[str, Any] = {"href": href}
    if sha256:
        rlink["hashes"] = [{"algorithm": "SHA-256", "value": sha256}]
    return {"uuid": ids("resource", key), "title": title, "rlinks": [rlink]}


def _evidence_observation(ids: _Ids, e: dict[str, Any], collected: str) -> dict[str, Any]:
    if e.get("verified"):
        text = (f"{e.get('kind')} envelope {e.get('ref')!r} verified against the trust policy; "
                f"signed by {', '.join(e.get('signers') or [])}; issued {e.get('issued_at')}")
    else:
        text = (f"envelope {e.get('ref')!r} refused at step {e.get('failed_step')}: {e.get('reason')}")
    obs: dict[str, Any] = {
        "uuid": ids("observation", "evidence", str(e.get("ref"))), "title": f"evidence {e.get('ref')}",
        "description": text, "methods": ["TEST"], "collected": collected,
        "props": _props(evidence_ref=e.get("ref"), kind=e.get("kind"),
                        verified=str(bool(e.get("verified"))).lower()),
    }
    if e.get("envelope_sha256"):
        obs["relevant-evidence"] = [{
            "href": f"#{ids('resource', 'evidence', str(e['envelope_sha256']))}",
            "description": f"DSSE envelope {evidence_path(str(e['envelope_sha256']))} in the ledger"}]
    return obs


def assessment_results(recorded: RecordedDecision) -> dict[str, Any]:
    """The decision as an OSCAL assessment-results document (``{"assessment-results": ...}``)."""
    d, m = recorded.decision, recorded.manifest
    ids = _Ids(recorded.decision_id)
    at = str(d.get("evaluated_at"))
    model = (d.get("request") or {}).get("model") or {}
    evidence = [e for e in d.get("evidence") or [] if isinstance(e, dict)]

    resources = [
        _resource(ids, "bundle", f"policy bundle {m.bundle_digest}", bundle_prefix(m.bundle_digest), None),
        _resource(ids, "request", "promotion request", request_path(m.decision_id), m.request_sha256),
        _resource(ids, "record", "signed decision record", record_path(m.decision_id), m.record_sha256),
        *(_resource(ids, f"evidence/{h}", f"evidence envelope {ref}", evidence_path(h), h)
          for ref, h in m.evidence),
    ]
    observations = [_evidence_observation(ids, e, at) for e in evidence]
    for key, title in (("request", "promotion request"), ("record", "decision record")):
        observations.append({
            "uuid": ids("observation", key), "title": title, "methods": ["EXAMINE"], "collected": at,
            "description": f"the {title} as kept in the ledger",
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
    findings = [{
        "uuid": ids("finding", rule), "title": rule, "description": message or rule,
        "target": {"type": "objective-id", "target-id": rule,
                   "status": {"state": "satisfied" if passed else "not-satisfied"}},
        "related-observations": related(ref),
    } for rule, passed, message, ref in rules]
    for finding, (rule, passed, _, _) in zip(findings, rules, strict=True):
        if not passed:
            finding["props"] = _props(severity=severity.get(rule, "deny"))

    result = {
        "uuid": ids("result"),
        "title": f"slmgate decision {recorded.decision_id}: {d.get('outcome')}",
        "description": str(d.get("summary") or d.get("outcome")),
        "start": at, "end": at,
        "props": _props(decision_id=recorded.decision_id, outcome=d.get("outcome"), tier=d.get("tier"),
                        bundle_digest=m.bundle_digest, policy_revision=m.policy_revision),
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
        "observations": observations,
        "findings": findings,
    }
    return {"assessment-results": {
        "uuid": ids("assessment-results"),
        "metadata": {
            "title": f"slmgate assessment results: {model.get('name')} {model.get('version')}",
            "last-modified": at, "version": m.slmgate_version or "unknown",
            "oscal-version": OSCAL_VERSION,
        },
        "import-ap": {"href": f"#{ids('resource', 'bundle')}",
                      "remarks": "The policy bundle the decision was made under is its assessment plan."},
        "results": [result],
        "back-matter": {"resources": resources},
    }}
