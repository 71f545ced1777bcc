"""Reusing evidence verification across re-evaluations (what-if over a whole ledger).

``verify_envelope``'s steps 1-10 do not depend on the evaluation time; step 11 (freshness,
``check_freshness``) does. ``CachedVerifier`` runs the real ``verify_envelope`` once per
(envelope bytes, trust digest, subject) at the statement's own issue time — where step 11
cannot fail, so whatever it concludes is time-independent — and then applies step 11 for each
evaluation time. ``evaluate_promotion(..., verify=CachedVerifier())`` uses it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from slmgate.evidence import (
    Envelope,
    Statement,
    TrustPolicy,
    VerifiedEvidence,
    canonical_json,
    check_freshness,
    format_time,
    verify_envelope,
)
from slmgate.evidence.errors import EvidenceInvalid


def trust_digest(trust: TrustPolicy) -> str:
    """sha256 over everything in a trust policy that verification reads."""
    doc = {
        "identities": sorted(
            [i.name, i.kind, i.role, i.person, i.key.keyid, sorted(i.may_sign),
             format_time(i.valid_from) if i.valid_from else None,
             format_time(i.valid_until) if i.valid_until else None]
            for i in trust.identities),
        "revoked": sorted(trust.revoked_keyids),
        "thresholds": dict(sorted(trust.thresholds.items())),
        "max_age_s": {k: v.total_seconds() for k, v in sorted(trust.max_age.items())},
        "skew_s": trust.max_clock_skew.total_seconds(),
    }
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class CachedVerifier:
    """A drop-in for ``verify_envelope`` that reuses steps 1-9 per envelope, trust and subject."""

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, str, str], VerifiedEvidence | EvidenceInvalid] = {}
        self._trust: dict[int, tuple[TrustPolicy, str]] = {}
        self.stats = CacheStats()

    def _trust_digest(self, trust: TrustPolicy) -> str:
        known = self._trust.get(id(trust))
        if known is None or known[0] is not trust:
            known = self._trust[id(trust)] = (trust, trust_digest(trust))
        return known[1]

    def __call__(self, raw: bytes, trust: TrustPolicy, *, subject_sha256: str | None,
                 now: datetime, ref: str = "envelope") -> VerifiedEvidence:
        subject = subject_sha256.lower() if subject_sha256 is not None else "(unbound)"
        # Keyed by the envelope's bytes themselves: a lookup compares them whole (hashing them
        # once per bytes object), where a digest would hash them again at every lookup.
        key = (raw if type(raw) is bytes else bytes(raw), self._trust_digest(trust), subject)
        found = self._cache.get(key)
        if found is None:
            self.stats.misses += 1
            try:
                probe = Statement.parse(Envelope.from_json(raw).payload).issued_at
            except EvidenceInvalid:
                probe = now  # verification fails at steps 1-4 whatever the time
            try:
                found = verify_envelope(raw, trust, subject_sha256=subject_sha256, now=probe, ref=ref)
            except EvidenceInvalid as exc:
                found = exc
            self._cache[key] = found
        else:
            self.stats.hits += 1
        if isinstance(found, EvidenceInvalid):
            raise type(found)(found.message, advice=found.advice)
        check_freshness(found.statement, trust, now)
        return found if found.ref == ref else replace(found, ref=ref)
