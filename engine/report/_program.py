"""The program report's content, read from the ledger and the policy bundle: the three
executive trajectories (cost per successful task, defects and escalations, adoption) week by
week against the charter's baselines and targets, the risk note, and the model council's page
(governance decision latency, promotions per tier, exit codes over time).

Only verified records count: a decision record not signed by a gate key, an ops-metrics
statement not signed by an identity the trust policy allows to sign ops-metrics (or whose
predicate does not check), and a deployment attestation that does not verify are left out and
named in the risk note as refused records.

Governance decision latency is measured from the first time a request entered the gate (its
first recorded decision) to its first final decision (approve or deny) — the time it waited
for people; a request still under review is pending, with its age.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from slmgate.engine.deploy._status import deployment_status
from slmgate.engine.ledger._history import LedgerHistory
from slmgate.engine.ledger._store import LedgerError
from slmgate.engine.ledger._verify import GateKeys
from slmgate.engine.ops._metrics import check_ops_predicate, iso_week, week_of
from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.evidence import Envelope, Statement, check_predicate, format_time, parse_time
from slmgate.evidence.errors import EvidenceInvalid

TRAJECTORIES = ("cost", "defects", "adoption")
EXIT_CODES = (0, 1, 3, 4)
WARN_DAYS = 30
DEFAULT_WEEKS = 12
_TITLES = {"cost": "Cost per successful task", "defects": "Defects and escalations",
           "adoption": "Adoption: share fully automated"}


@dataclass(frozen=True)
class Week:
    """One ISO week of the program, every verified statement of that week combined (shares
    weighted by tasks, cost as total over successful tasks, the highest p95)."""

    week: str
    start: date
    tasks: int
    automated_share: float
    escalation_share: float
    defects_per_1000: float
    cost_total: float
    successful: int
    currency: str
    latency_p95_ms: float
    error_rate: float
    business_metrics: Mapping[str, float]
    models: tuple[str, ...]  # weights digests in service

    @property
    def cost_per_successful(self) -> float | None:
        return self.cost_total / self.successful if self.successful else None

    def to_json(self) -> dict[str, Any]:
        return {"week": self.week, "start": self.start.isoformat(), "tasks": self.tasks,
                "automated_share": round(self.automated_share, 6),
                "escalation_share": round(self.escalation_share, 6),
                "defects_per_1000": round(self.defects_per_1000, 4),
                "cost_per_successful_task": _round(self.cost_per_successful),
                "cost_total": round(self.cost_total, 6), "successful_tasks": self.successful,
                "currency": self.currency, "latency_p95_ms": round(self.latency_p95_ms, 3),
                "error_rate": round(self.error_rate, 6),
                "business_metrics": {k: round(v, 6) for k, v in sorted(self.business_metrics.items())},
                "weights_digests": list(self.models)}


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _combine(week: str, predicates: Sequence[Mapping[str, Any]]) -> Week:
    tasks = sum(int(p["tasks"]) for p in predicates)

    def weighted(get: Any) -> float:
        return sum(float(get(p)) * int(p["tasks"]) for p in predicates) / tasks if tasks else 0.0

    metrics: dict[str, float] = {}
    for mid in sorted({k for p in predicates for k in p["business_metrics"]}):
        having = [p for p in predicates if mid in p["business_metrics"]]
        n = sum(int(p["tasks"]) for p in having)
        metrics[mid] = (sum(float(p["business_metrics"][mid]) * int(p["tasks"]) for p in having) / n
                        if n else float(having[0]["business_metrics"][mid]))
    return Week(week, iso_week(week)[0], tasks, weighted(lambda p: p["automated_share"]),
                weighted(lambda p: p["escalation_share"]), weighted(lambda p: p["defects_per_1000"]),
                sum(float(p["cost"]["total"]) for p in predicates),
                sum(int(p["cost"]["successful_tasks"]) for p in predicates),
                str(predicates[0]["cost"]["currency"]),
                max(float(p["latency_p95_ms"]) for p in predicates),
                weighted(lambda p: p["error_rate"]),
                metrics, tuple(sorted({str(p["model"]["weights_digest"]) for p in predicates})))


@dataclass(frozen=True)
class Trajectory:
    """One executive number, week by week, against the charter metric it is measured by."""

    name: str
    title: str
    unit: str
    metric: str | None
    baseline: float | None
    target: float | None
    direction: str  # lower_is_better | higher_is_better
    series: tuple[tuple[str, float], ...]  # (week, value), oldest first
    second: tuple[tuple[str, float], ...] = ()  # escalation share, for the defects trajectory
    second_label: str = ""

    @property
    def this_week(self) -> tuple[str, float] | None:
        return self.series[-1] if self.series else None

    @property
    def change(self) -> float | None:
        return self.series[-1][1] - self.series[-2][1] if len(self.series) > 1 else None

    @property
    def trend(self) -> str:
        """improving / worsening / flat against the previous week, in the charter's direction."""
        if not self.series:
            return "no data"
        change = self.change
        if change is None:
            return "first week"
        scale = max(abs(self.series[-2][1]), 1e-9)
        if abs(change) / scale < 0.01:
            return "flat"
        better = change < 0 if self.direction == "lower_is_better" else change > 0
        return "improving" if better else "worsening"

    def to_json(self) -> dict[str, Any]:
        this = self.this_week
        return {"title": self.title, "unit": self.unit, "metric": self.metric,
                "baseline": self.baseline, "target": self.target, "direction": self.direction,
                "series": [{"week": w, "value": round(v, 6)} for w, v in self.series],
                "this_week": {"week": this[0], "value": round(this[1], 6)} if this else None,
                "change": _round(self.change), "trend": self.trend,
                **({"escalation_share": [{"week": w, "value": round(v, 6)} for w, v in self.second]}
                   if self.name == "defects" else {})}


@dataclass
class ProgramReport:
    program: str
    title: str
    owner: str
    generated_at: datetime
    since: date
    ledger: str
    bundle_digest: str
    weeks: list[Week] = field(default_factory=list)
    trajectories: dict[str, Trajectory] = field(default_factory=dict)
    risks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)
    per_tier: list[dict[str, Any]] = field(default_factory=list)
    exit_codes: list[dict[str, Any]] = field(default_factory=list)
    decisions: int = 0

    @property
    def risk_count(self) -> int:
        return sum(len(v) for v in self.risks.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "program", "program": self.program, "title": self.title, "owner": self.owner,
            "generated_at": format_time(self.generated_at), "since": self.since.isoformat(),
            "ledger": self.ledger, "policy_bundle": self.bundle_digest,
            "trajectories": {n: t.to_json() for n, t in self.trajectories.items()},
            "weeks": [w.to_json() for w in self.weeks],
            "risk_note": self.risks,
            "council": {"decisions": self.decisions, "decision_latency": self.latency,
                        "promotions_per_tier": self.per_tier, "exit_codes": self.exit_codes},
        }


def _ops_weeks(history: LedgerHistory, gates: GateKeys, since: date,
               refused: list[dict[str, Any]]) -> list[Week]:
    """The verified ops-metrics statements, the latest per (week, region), combined per week."""
    latest: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
    for manifest in history.attestations("ops-metrics"):
        try:
            envelope, statement = history.attested(manifest)
            if gates.attested("ops-metrics", envelope, statement.issued_at) is not True:
                raise EvidenceInvalid("is not signed by an identity the trust policy allows to "
                                      "sign ops-metrics")
            check_predicate("ops-metrics", statement.predicate)
            check_ops_predicate(statement.predicate)
        except (EvidenceInvalid, KeyError, TypeError, ValueError) as exc:
            refused.append({"record": manifest.attestation_id, "kind": "ops-metrics",
                            "reason": str(getattr(exc, "message", exc))})
            continue
        p = statement.predicate
        key = (str(p["period"]["week"]), str(p.get("region", "")))
        if key not in latest or statement.issued_at >= latest[key][0]:
            latest[key] = (statement.issued_at, p)
    by_week: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (week, _), (_, p) in latest.items():
        if iso_week(week)[1] >= since:
            by_week[week].append(p)
    return [_combine(w, by_week[w]) for w in sorted(by_week, key=lambda w: iso_week(w)[0])]


def _trajectories(weeks: Sequence[Week], charter: Mapping[str, Any]) -> dict[str, Trajectory]:
    metrics = {str(m["id"]): m for m in charter["business_metrics"]}
    named = (charter.get("operations") or {}).get("trajectories") or {}
    currency = str(((charter.get("operations") or {}).get("cost_model") or {}).get("currency", ""))
    values: dict[str, list[tuple[str, float | None]]] = {
        "cost": [(w.week, w.cost_per_successful) for w in weeks],
        "defects": [(w.week, w.defects_per_1000 / 1000) for w in weeks],
        "adoption": [(w.week, w.automated_share) for w in weeks],
    }
    defaults = {"cost": (currency or "per task", "lower_is_better"),
                "defects": ("ratio", "lower_is_better"), "adoption": ("ratio", "higher_is_better")}
    out = {}
    for name in TRAJECTORIES:
        metric = metrics.get(named.get(name, ""))
        unit, direction = defaults[name]
        series = tuple((w, float(v)) for w, v in values[name] if v is not None)
        out[name] = Trajectory(
            name, _TITLES[name], str(metric["unit"]) if metric else unit,
            str(metric["id"]) if metric else None,
            float(metric["baseline"]) if metric else None, float(metric["target"]) if metric else None,
            str(metric["direction"]) if metric else direction, series,
            tuple((w.week, w.escalation_share) for w in weeks) if name == "defects" else (),
            "escalation share" if name == "defects" else "")
    return out


@dataclass(frozen=True)
class _Decision:
    id: str
    request_id: str
    model: str
    version: str
    tier: str
    outcome: str
    exit_code: int
    at: datetime
    doc: Mapping[str, Any]


def _decisions(history: LedgerHistory, gates: GateKeys, refused: list[dict[str, Any]]) -> list[_Decision]:
    found = []
    for recorded in history.decisions():
        try:
            envelope = Envelope.from_json(recorded.record)
            statement = Statement.parse(envelope.payload)
            if statement.kind != "decision-record" or not gates.signed(envelope, statement.issued_at):
                raise EvidenceInvalid("is not a decision record signed by a trusted gate key")
            d = statement.predicate["decision"]
            if d.get("id") != recorded.decision_id or d.get("outcome") != recorded.manifest.outcome:
                raise EvidenceInvalid("disagrees with its chain entry")
            request = d.get("request") or {}
            found.append(_Decision(
                recorded.decision_id, str(request.get("id", recorded.decision_id)),
                str((request.get("model") or {}).get("name", "")),
                str((request.get("model") or {}).get("version", "")), str(d.get("tier") or "none"),
                str(d["outcome"]), int(d["exit_code"]), parse_time(d["evaluated_at"], what="evaluated_at"),
                d))
        except (EvidenceInvalid, KeyError, TypeError, ValueError) as exc:
            refused.append({"record": recorded.decision_id, "kind": "decision-record",
                            "reason": str(getattr(exc, "message", exc))})
    return found


def root_cause(d: Mapping[str, Any]) -> str:
    """Why a promotion was denied, in one line: the first evidence that failed to verify, the
    policy error, or the first denying finding."""
    for e in d.get("evidence") or []:
        if isinstance(e, dict) and not e.get("verified"):
            return f"evidence {e.get('ref')}: {e.get('failed_step')}: {e.get('reason')}"
    if d.get("error"):
        return f"policy error: {d['error']}"
    for f in d.get("findings") or []:
        if isinstance(f, dict) and f.get("severity") == "deny":
            return f"{f.get('rule_id')}: {f.get('message')}"
    return str(d.get("summary") or "denied")


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _governance(decisions: Sequence[_Decision], now: datetime, since: datetime,
                report: ProgramReport) -> None:
    by_request: dict[str, list[_Decision]] = defaultdict(list)
    for d in decisions:
        by_request[d.request_id].append(d)
    latencies: dict[str, list[float]] = defaultdict(list)
    pending: dict[str, int] = Counter()
    pending_reviews = []
    for rid, ds in by_request.items():
        ds.sort(key=lambda d: d.at)
        final = next((d for d in ds if d.outcome in ("approve", "deny")), None)
        if final is not None:
            if final.at >= since:
                latencies[final.tier].append(_hours(final.at - ds[0].at))
        elif ds[-1].outcome == "review":
            last = ds[-1]
            pending[last.tier] += 1
            needed = ", ".join(f"{a.get('count', 1)}× {a.get('role')}"
                               for a in last.doc.get("approvals_needed") or [] if isinstance(a, dict))
            pending_reviews.append({"request": rid, "decision": last.id, "model": last.model,
                                    "version": last.version, "tier": last.tier,
                                    "waiting_since": format_time(ds[0].at),
                                    "age_days": round((now - ds[0].at).total_seconds() / 86400, 1),
                                    "needs": needed})
    report.risks["pending_reviews"] = sorted(pending_reviews, key=lambda r: -r["age_days"])
    tiers = sorted({d.tier for d in decisions})
    report.latency = [{"tier": t, "decided": len(latencies[t]),
                       "median_hours": statistics.median(latencies[t]) if latencies[t] else None,
                       "max_hours": max(latencies[t]) if latencies[t] else None,
                       "pending": pending[t]} for t in tiers]
    period = [d for d in decisions if d.at >= since]
    report.decisions = len(period)
    report.per_tier = [{"tier": t, **{o: sum(1 for d in period if d.tier == t and d.outcome == o)
                                       for o in ("approve", "review", "deny")},
                        "total": sum(1 for d in period if d.tier == t)} for t in tiers]
    weeks: dict[str, Counter[int]] = defaultdict(Counter)
    for d in period:
        weeks[week_of(d.at.date())][d.exit_code] += 1
    report.exit_codes = [{"week": w, "counts": {str(c): weeks[w][c] for c in EXIT_CODES}}
                         for w in sorted(weeks, key=lambda w: iso_week(w)[0])]
    report.risks["denied"] = [
        {"decision": d.id, "request": d.request_id, "model": d.model, "version": d.version,
         "decided_at": format_time(d.at), "exit_code": d.exit_code, "root_cause": root_cause(d.doc)}
        for d in period if d.outcome == "deny"]


def _expiring(bundle: PolicyBundle, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    horizon = now + timedelta(days=WARN_DAYS)
    waivers = []
    for w in bundle.data["waivers"]["waivers"]:
        expires = date.fromisoformat(str(w["expires"]))
        if expires <= horizon.date():
            waivers.append({"waiver": w["id"], "rule_id": w["rule_id"], "owner": w["owner"],
                            "ticket": w["ticket"], "expires": expires.isoformat(),
                            "days_left": (expires - now.date()).days,
                            "expired": expires < now.date()})
    keys = []
    revoked = bundle.trust.revoked_keyids
    for ident in bundle.trust.identities:
        until = ident.valid_until
        if until is not None and until <= horizon and ident.key.keyid not in revoked:
            keys.append({"identity": ident.name, "role": ident.role,
                         "valid_until": format_time(until),
                         "days_left": round((until - now).total_seconds() / 86400, 1),
                         "expired": until < now})
    return (sorted(waivers, key=lambda w: w["expires"]), sorted(keys, key=lambda k: k["valid_until"]))


def subprocessors_under_safeguards(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Subprocessors processing a data class in a region outside its residency, which the bundle
    allows only under a transfer safeguard: each with the classes, regions and safeguard."""
    classes = data["charter"]["data_classes"]
    out = []
    for sid, s in sorted(data["subprocessors"].get("subprocessors", {}).items()):
        outside = {c: sorted(set(s["regions"]) - set(classes[c]["residency"]))
                   for c in s["data_classes"] if c in classes}
        outside = {c: r for c, r in outside.items() if r}
        if outside and s.get("transfer_safeguard"):
            regions = sorted({r for v in outside.values() for r in v})
            out.append({"subprocessor": sid, "name": s["name"],
                        "data_classes": sorted(outside), "regions": regions,
                        "safeguard": s["transfer_safeguard"]})
    return out


def program_report(history: LedgerHistory, bundle: PolicyBundle, gates: GateKeys, now: datetime,
                   since: date | None = None) -> ProgramReport:
    """Everything the report shows, from verified records only (see the module docstring)."""
    charter = bundle.data["charter"]
    since = since or (now - timedelta(weeks=DEFAULT_WEEKS)).date()
    report = ProgramReport(str(charter["program"]), str(charter["title"]), str(charter["owner"]),
                           now, since, str(history.path), bundle.digest)
    refused: list[dict[str, Any]] = []
    report.weeks = _ops_weeks(history, gates, since, refused)
    report.trajectories = _trajectories(report.weeks, charter)
    waivers, keys = _expiring(bundle, now)
    report.risks = {"waivers_expiring": waivers, "keys_expiring": keys}
    since_at = datetime.combine(since, datetime.min.time(), tzinfo=now.tzinfo)
    _governance(_decisions(history, gates, refused), now, since_at, report)
    try:
        status = deployment_status(history, gates, now)
    except LedgerError as exc:
        refused.append({"record": "deployments", "kind": "deployment-attestation", "reason": exc.detail})
        status = None
    report.risks["regions_drifted"] = [
        {"region": r.region, "model": r.model, "weights_digest": r.weights_digest, "flags": list(r.flags)}
        for r in (status.regions if status else []) if r.flags]
    refused += [{"record": "deployment", "kind": "deployment-attestation", "reason": m}
                for m in (status.refused if status else [])]
    report.risks["subprocessors_under_safeguards"] = subprocessors_under_safeguards(bundle.data)
    report.risks["refused_records"] = refused
    return report
