"""`slmgate deploy verify`: are the weights served in one region exactly the weights a recorded,
gate-signed decision approved, and may that region serve the purpose's data?

The checks, in order, each with its own name (``DeploymentRefused.check``):

1. ``decision``: the decision is in the ledger (unknown: ``InputError``, exit 2), its files match
   the digests its chain entry records, and its record is a decision-record signed by a gate key
   the caller trusts (never a key read from the ledger) agreeing with its entry;
2. ``approval``: the decision's outcome is ``approve``;
3. ``digest``: the weights on disk, hashed with the serialization of the weights manifest the
   decision verified, have the root digest the approved request names;
4. ``region``: the region's residency zone (``eu`` for ``eu-west``) is one the approved request
   deploys to and, in the charter of the bundle stored with the decision, in the residency of
   every data class of the served purpose; a stored bundle that is missing or cannot be read
   refuses here (exit 4), since the region cannot be judged without it.

Anything that cannot be checked is refused (exit 4), never verified.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from slmgate.engine.ledger._history import LedgerHistory, RecordedDecision
from slmgate.engine.ledger._store import LedgerError, sha256_hex
from slmgate.engine.ledger._verify import GateKeys
from slmgate.evidence import (
    Envelope,
    SigningKey,
    Statement,
    WeightsManifest,
    format_time,
    hash_model_dir,
    make_statement,
    sign_envelope,
)
from slmgate.evidence.errors import EvidenceInvalid, SlmgateError

CHECKS = ("decision", "approval", "digest", "region")


class DeploymentRefused(SlmgateError):
    """A deployment that did not verify; ``check`` names the check that refused it (exit 4)."""

    def __init__(self, check: str, message: str, **kwargs: Any) -> None:
        super().__init__(f"{check}: {message}", **kwargs)
        self.check = check
        self.reason = message


@dataclass(frozen=True)
class DeploymentCheck:
    """A verified deployment: what was found on disk and the approval it matches."""

    region: str
    host: str
    model_name: str
    weights_digest: str  # sha256:<hex>, as found on disk
    files: int
    decision_id: str
    bundle_digest: str
    purpose: str
    data_classes: tuple[str, ...]
    checked_at: datetime
    checks: tuple[str, ...] = field(default=CHECKS)

    def predicate(self) -> dict[str, Any]:
        return {
            "attested_at": format_time(self.checked_at), "region": self.region, "host": self.host,
            "model": {"name": self.model_name, "weights_digest": self.weights_digest,
                      "files": self.files},
            "decision": {"id": self.decision_id, "outcome": "approve",
                         "bundle_digest": self.bundle_digest},
            "purpose": self.purpose, "data_classes": list(self.data_classes),
        }

    def attestation(self, key: SigningKey) -> bytes:
        """The gate-signed deployment attestation, an in-toto statement about these weights."""
        statement = make_statement(self.model_name, self.weights_digest.removeprefix("sha256:"),
                                   "deployment-attestation", self.predicate())
        return sign_envelope(statement, [key]).to_json()

    def to_json(self) -> dict[str, Any]:
        return {"verified": True, **self.predicate(), "checks": list(self.checks)}

    def text(self) -> str:
        return (f"OK: {self.model_name} in {self.region} ({self.host}) serves {self.weights_digest}, "
                f"approved by {self.decision_id}; region allowed for purpose {self.purpose} "
                f"({', '.join(self.data_classes)})")


def residency_zone(region: str, zones: set[str]) -> str:
    """The residency zone a region belongs to: the region itself when the charter names it,
    else its first dash-separated part (``eu-west`` → ``eu``)."""
    return region if region in zones else region.split("-", 1)[0]


def verified_record(recorded: RecordedDecision, gates: GateKeys) -> dict[str, Any]:
    """The decision of a recorded record signed by a trusted gate key and agreeing with its chain
    entry; ``DeploymentRefused("decision", ...)`` otherwise."""
    try:
        envelope = Envelope.from_json(recorded.record)
        statement = Statement.parse(envelope.payload)
    except EvidenceInvalid as exc:
        raise DeploymentRefused("decision", f"the record of {recorded.decision_id} is not a signed "
                                            f"statement ({exc})") from exc
    if statement.kind != "decision-record":
        raise DeploymentRefused("decision", f"{recorded.decision_id} holds a {statement.kind} "
                                            "statement, not a decision record")
    if not gates.signed(envelope, statement.issued_at):
        raise DeploymentRefused("decision", f"the record of {recorded.decision_id} is not signed by "
                                            "a trusted gate key valid when it was decided")
    decision = statement.predicate.get("decision")
    if not isinstance(decision, dict):
        raise DeploymentRefused("decision", f"the record of {recorded.decision_id} holds no decision")
    m = recorded.manifest
    for name, got, want in (("id", decision.get("id"), m.decision_id),
                            ("outcome", decision.get("outcome"), m.outcome),
                            ("bundle_digest", decision.get("bundle_digest"), m.bundle_digest),
                            ("request.digest", (decision.get("request") or {}).get("digest"),
                             f"sha256:{sha256_hex(recorded.request)}")):
        if got != want:
            raise DeploymentRefused("decision", f"the record's {name} {got!r} disagrees with the "
                                                f"ledger ({want!r})")
    return decision


def _recorded_manifest(recorded: RecordedDecision, model_name: str, digest: str) -> WeightsManifest | None:
    """The weights manifest the decision verified for the approved digest, if it kept one."""
    for raw in recorded.evidence.values():
        try:
            statement = Statement.parse(Envelope.from_json(raw).payload)
        except EvidenceInvalid:
            continue
        if statement.kind == "weights-manifest" and statement.is_about(digest):
            try:
                manifest = WeightsManifest.from_predicate(model_name, statement.predicate)
            except (KeyError, TypeError, ValueError):
                return None
            if manifest.root_digest == digest:
                return manifest
    return None


def verify_deployment(model_dir: Path, region: str, history: LedgerHistory, decision_id: str,
                      gates: GateKeys, now: datetime, *, host: str | None = None) -> DeploymentCheck:
    """Run the four checks of the module docstring; the first that fails raises."""
    entry = history.resolve(decision_id)  # unknown decision: LedgerError, exit 2
    try:
        recorded = history.load(entry)
    except LedgerError as exc:  # a file that does not match its entry: could not verify
        raise DeploymentRefused("decision", exc.detail) from exc
    decision = verified_record(recorded, gates)
    if decision.get("outcome") != "approve":
        raise DeploymentRefused("approval", f"decision {recorded.decision_id} is "
                                            f"{str(decision.get('outcome')).upper()}, not an approval; "
                                            "only approved weights may be deployed")
    request = recorded.promotion_request()
    model_name = str(request.doc["model"]["name"])
    approved = request.weights_sha256
    expected = _recorded_manifest(recorded, model_name, approved)
    if expected is not None:
        found = hash_model_dir(model_dir, model_name=model_name, algorithm=expected.hash_type,  # type: ignore[arg-type]
                               shard_size=expected.shard_size, ignore_paths=expected.ignore_paths)
    else:
        found = hash_model_dir(model_dir, model_name=model_name)
    if found.root_digest != approved:
        diff = f" ({expected.diff(found).describe()})" if expected is not None else ""
        raise DeploymentRefused("digest", f"the weights in {model_dir} are sha256:{found.root_digest}"
                                          f"{diff}; decision {recorded.decision_id} approved "
                                          f"sha256:{approved}")
    deployment = request.doc["deployment"]
    purpose = str(deployment["purpose"])
    try:
        bundle = history.bundle_files(recorded.manifest.bundle_digest)
    except LedgerError as exc:  # the ledger lost what the decision was made under: could not verify
        raise DeploymentRefused("region", f"the policy bundle decision {recorded.decision_id} was "
                                          f"made under cannot be read from the ledger "
                                          f"({exc.detail})") from exc
    charter, purposes = (_yaml(bundle, name) for name in ("charter.yaml", "purposes.yaml"))
    try:
        classes = tuple(purposes["purposes"][purpose]["data_classes"])
        residency = {c: set(charter["data_classes"][c]["residency"]) for c in classes}
    except (KeyError, TypeError) as exc:
        raise DeploymentRefused("region", f"purpose {purpose!r} or one of its data classes is not "
                                          f"in the bundle decided under ({exc})") from exc
    zone = residency_zone(region, set().union(*residency.values()))
    if zone not in {str(r) for r in deployment["regions"]}:
        raise DeploymentRefused("region", f"region {region} (zone {zone}) is not one decision "
                                          f"{recorded.decision_id} approved "
                                          f"(deployment.regions {deployment['regions']})")
    outside = sorted(c for c, zones in residency.items() if zone not in zones)
    if outside:
        raise DeploymentRefused("region", f"region {region} (zone {zone}) is outside the residency "
                                          f"of {', '.join(outside)} (charter.yaml data_classes), "
                                          f"which purpose {purpose} serves")
    return DeploymentCheck(region, host or socket.gethostname(), model_name,
                           f"sha256:{found.root_digest}", len(found.resources), recorded.decision_id,
                           recorded.manifest.bundle_digest, purpose, classes, now)


def _yaml(files: dict[str, bytes], name: str) -> Any:
    """A policy file of a stored bundle (it hashed to its digest when recorded)."""
    import yaml

    try:
        doc = yaml.safe_load(files[name])
    except (KeyError, yaml.YAMLError) as exc:
        raise DeploymentRefused("region", f"{name} of the stored bundle cannot be read "
                                          f"({'missing' if isinstance(exc, KeyError) else exc})") from exc
    if not isinstance(doc, dict):
        raise DeploymentRefused("region", f"{name} of the stored bundle is not a mapping")
    return doc

