"""`slmgate deploy status`: the state of every region, read back from the gate-signed deployment
attestations in the ledger — the digest in service, the decision that approved it, the last
verification and its age — with what needs attention flagged: regions serving different digests
of one model (silent divergence), and verifications older than the charter allows
(``deployments.max_verification_age_hours``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from slmgate.engine.ledger._history import LedgerHistory
from slmgate.engine.ledger._store import LedgerError
from slmgate.engine.ledger._verify import GateKeys
from slmgate.evidence import format_time, parse_time
from slmgate.evidence.errors import EvidenceInvalid

DEFAULT_MAX_AGE_HOURS = 168


@dataclass(frozen=True)
class RegionState:
    """A region as its latest verified deployment attestation describes it."""

    region: str
    model: str
    weights_digest: str
    decision_id: str
    host: str
    verified_at: datetime
    age: timedelta
    max_age: timedelta
    attestation_id: str
    flags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "model": self.model, "weights_digest": self.weights_digest,
                "decision": self.decision_id, "host": self.host,
                "last_verified_at": format_time(self.verified_at),
                "age_hours": round(self.age.total_seconds() / 3600, 1),
                "max_age_hours": round(self.max_age.total_seconds() / 3600, 1),
                "attestation": self.attestation_id, "flags": list(self.flags)}


@dataclass
class DeploymentStatus:
    ledger: str
    at: datetime
    regions: list[RegionState] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # attestations that did not verify

    @property
    def flagged(self) -> bool:
        return bool(self.refused) or any(r.flags for r in self.regions)

    def to_json(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "at": format_time(self.at), "flagged": self.flagged,
                "regions": [r.to_json() for r in self.regions], "refused": self.refused}

    def text(self) -> str:
        if not self.regions and not self.refused:
            return f"no deployment attestations in {self.ledger}"
        lines = [f"{'region':<14} {'model':<22} {'digest':<19} {'decision':<26} last verified (age)"]
        for r in self.regions:
            lines.append(f"{r.region:<14} {r.model:<22} {r.weights_digest[:19]:<19} "
                         f"{r.decision_id:<26} {format_time(r.verified_at)} "
                         f"({r.age.total_seconds() / 3600:.1f} h)")
            lines += [f"  FLAG: {f}" for f in r.flags]
        lines += [f"REFUSED: {m}" for m in self.refused]
        lines.append("FLAGGED" if self.flagged else "OK: every region verified, one digest per model")
        return "\n".join(lines)


def _max_age(history: LedgerHistory, bundle_digest: str, cache: dict[str, timedelta]) -> timedelta:
    if bundle_digest not in cache:
        hours = DEFAULT_MAX_AGE_HOURS
        try:
            charter = yaml.safe_load(history.bundle_files(bundle_digest)["charter.yaml"])
            hours = int(((charter or {}).get("deployments") or {}).get(
                "max_verification_age_hours", DEFAULT_MAX_AGE_HOURS))
        except (LedgerError, KeyError, TypeError, ValueError, yaml.YAMLError):
            pass  # the default limit applies; the bundle was validated when it was decided
        cache[bundle_digest] = timedelta(hours=hours)
    return cache[bundle_digest]


def deployment_status(history: LedgerHistory, gates: GateKeys, now: datetime) -> DeploymentStatus:
    """The latest verified attestation of each region, flagged; an attestation that does not
    verify under the gate keys is listed as refused (and flags the status), never used."""
    status = DeploymentStatus(str(history.path), now)
    latest: dict[str, tuple[datetime, dict[str, Any], str]] = {}
    for manifest in history.attestations("deployment-attestation"):
        try:
            envelope, statement = history.attested(manifest)
            if not gates.signed(envelope, statement.issued_at):
                raise EvidenceInvalid("is not signed by a trusted gate key")
            at = parse_time(statement.predicate["attested_at"], what="attested_at")
            region = str(statement.predicate["region"])
        except (EvidenceInvalid, KeyError, TypeError, ValueError) as exc:
            status.refused.append(f"attestation {manifest.attestation_id} {exc}")
            continue
        if region not in latest or at >= latest[region][0]:
            latest[region] = (at, statement.predicate, manifest.attestation_id)
    ages: dict[str, timedelta] = {}
    digests: dict[str, set[str]] = {}
    for _, predicate, _ in latest.values():
        digests.setdefault(predicate["model"]["name"], set()).add(predicate["model"]["weights_digest"])
    for region in sorted(latest):
        at, p, attestation_id = latest[region]
        model, digest = str(p["model"]["name"]), str(p["model"]["weights_digest"])
        max_age = _max_age(history, str(p["decision"]["bundle_digest"]), ages)
        flags = []
        if len(digests[model]) > 1:
            others = sorted(r for r, (_, q, _) in latest.items()
                            if q["model"]["name"] == model and q["model"]["weights_digest"] != digest)
            flags.append(f"drift: {model} is served here as {digest[:19]}, in "
                         f"{', '.join(others)} as another digest")
        if now - at > max_age:
            flags.append(f"stale: last verified {(now - at).total_seconds() / 3600:.1f} h ago, "
                         f"the charter allows {max_age.total_seconds() / 3600:.0f} h")
        status.regions.append(RegionState(region, model, digest, str(p["decision"]["id"]),
                                          str(p["host"]), at, now - at, max_age, attestation_id,
                                          tuple(flags)))
    return status

