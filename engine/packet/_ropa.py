"""GDPR Art. 30(1) records of processing from the policy bundle: one processing activity per
purpose — controller and DPO, lawful basis, data subjects and categories, recipients, third-country
transfers with their safeguards, erasure limits, security measures, and the datasets and
derivative flows under it, and the recipients its declared flows reach. Cross-checked before
anything is written; rendered as JSON, CSV (RFC 4180, UTF-8, a BOM only when asked, one row per
activity, several values of a cell one per line) or PDF (the packet pipeline).

Given verified data cards (``slmgate ropa --data-cards DIR``, or the cards a promotion was
decided on in its packet), each activity also takes its recipients from the cards' access roles
and its data sources from their provenance — a derivative named with the dataset it came from,
so the chain reads source by source."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmgate.engine.policy._bundle import personal_data_misdeclared, retention_overruns
from slmgate.evidence import format_time
from slmgate.evidence.errors import InputError

__all__ = [
    "CSV_COLUMNS", "CSV_SEPARATOR", "check_processing", "joint_controllers_text", "packet_extract",
    "processing_record", "record_time", "render_ropa_pdf", "representative_text", "ropa_csv",
    "ropa_json", "security_measures",
]

# Regions inside the GDPR's territory; processing anywhere else is a third-country transfer.
EEA_REGIONS = frozenset({"eu", "eea"})
# CSV cells with several values put one value per line (LF inside the quoted cell, which
# spreadsheets show as lines of one cell); a value holding a line break is refused, so the
# separator never occurs inside a value.
CSV_SEPARATOR = "\n"
CSV_COLUMNS = (
    "activity_id", "activity", "uses", "controller", "controller_contact", "dpo_contact",
    "joint_controllers", "eu_representative",
    "lawful_basis", "legitimate_interest", "data_subjects", "personal_data_categories",
    "special_categories", "other_data_categories", "recipients", "third_country_transfers",
    "erasure_time_limits", "security_measures", "datasets", "derivative_flows", "data_sources",
)


def check_processing(data: Mapping[str, Any]) -> None:
    """Refuse a bundle whose records would be wrong: a dataset or flow under a purpose (or from a
    dataset) that does not exist, a dataset or derivative kept longer than its purpose's
    retention (or declared to hold no personal data while it has a personal data class), an
    unknown data class, or a subprocessor processing a data class
    outside its residency — or personal data outside the EEA — without a transfer safeguard.
    Every problem is named at once (``InputError``, exit 2)."""
    problems: list[str] = []
    classes = data["charter"]["data_classes"]
    purposes = data["purposes"]["purposes"]
    datasets = data["purposes"].get("datasets", {})
    for pid, p in purposes.items():
        problems += [f"purposes.yaml: purposes.{pid}: unknown data class {c!r}"
                     for c in p["data_classes"] if c not in classes]
    for did, d in datasets.items():
        if d["purpose"] not in purposes:
            problems.append(f"purposes.yaml: datasets.{did}: purpose {d['purpose']!r} does not exist")
    for fid, f in data["purposes"].get("derivative_flows", {}).items():
        if f["purpose"] not in purposes:
            problems.append(f"purposes.yaml: derivative_flows.{fid}: purpose {f['purpose']!r} "
                            "does not exist")
        if f["source"] not in datasets:
            problems.append(f"purposes.yaml: derivative_flows.{fid}: source dataset "
                            f"{f['source']!r} does not exist")
    overruns = [*retention_overruns(data["purposes"]), *personal_data_misdeclared(data)]
    problems += [f"purposes.yaml: {'.'.join(key)}: {message}" for key, message in overruns]
    sources = set(datasets) | set(data["purposes"].get("derivative_flows", {}))
    problems += [f"purposes.yaml: flows.{fid}.from: unknown dataset or derivative flow {f['from']!r}"
                 for fid, f in data["purposes"].get("flows", {}).items() if f["from"] not in sources]
    for sid, s in data["subprocessors"].get("subprocessors", {}).items():
        if s.get("transfer_safeguard"):
            continue
        for c in s["data_classes"]:
            declared = classes.get(c)
            if declared is None:
                problems.append(f"subprocessors.yaml: subprocessors.{sid}: unknown data class {c!r}")
                continue
            outside = sorted(set(s["regions"]) - set(declared["residency"]))
            third = sorted(set(s["regions"]) - EEA_REGIONS) if declared["personal"] else []
            if outside:
                problems.append(f"subprocessors.yaml: subprocessors.{sid}: transfers {c} to "
                                f"{', '.join(outside)}, outside its residency "
                                f"{', '.join(declared['residency'])}, without a transfer_safeguard")
            elif third:
                problems.append(f"subprocessors.yaml: subprocessors.{sid}: transfers personal data "
                                f"({c}) to third country {', '.join(third)} without a "
                                "transfer_safeguard")
    if problems:
        body = "\n".join(f"  {p}" for p in problems)
        raise InputError(f"records of processing refused ({len(problems)} problem(s)):\n{body}",
                         advice="declare the purpose, or a transfer_safeguard for the subprocessor")


def _transfers(sub: Mapping[str, Any], classes: Mapping[str, Any], touched: Iterable[str]) -> list[str]:
    out = []
    personal = [c for c in touched if classes[c]["personal"]]
    for region in sub["regions"]:
        moved = [c for c in personal
                 if region not in EEA_REGIONS or region not in classes[c]["residency"]]
        if moved:
            out.append(f"{region} ({', '.join(moved)}) — safeguard: "
                       f"{sub.get('transfer_safeguard') or 'none'}")
    return out


def card_source(card: Mapping[str, Any]) -> str:
    """One data source as an Art. 30 reader wants it: the dataset and where it came from."""
    if card["category"] == "derivative":
        source = card.get("source_sha256") or ""
        return f"{card['dataset']}: derived from {card['origin']} (sha256:{source[:16]}…)"
    return f"{card['dataset']}: {card['category'].replace('_', ' ')} ({card['origin']})"


def card_recipients(cards: Sequence[Mapping[str, Any]]) -> list[str]:
    """Internal recipients by access role, with the datasets each may read per signed card."""
    by_role: dict[str, set[str]] = {}
    for c in cards:
        by_role.setdefault(c["access_role"], set()).add(c["dataset"])
    return [f"{role} (internal; reads {', '.join(sorted(sets))} per signed data cards)"
            for role, sets in sorted(by_role.items())]


def _carried(purposes: Mapping[str, Any], source: str) -> list[str]:
    """The data classes a dataset or derivative flow carries (a derivative: its source's)."""
    datasets = purposes.get("datasets", {})
    if source in datasets:
        return list(datasets[source]["data_classes"])
    origin = purposes.get("derivative_flows", {}).get(source, {}).get("source")
    return list(datasets.get(origin, {}).get("data_classes", []))


def flow_recipients(data: Mapping[str, Any], pid: str) -> tuple[list[str], list[str]]:
    """Art. 30(1)(d) recipients of activity ``pid`` from the declared ``flows`` whose source (a
    dataset or derivative flow) serves that purpose, and the third-country transfers they make.
    A subprocessor is a processor with its service and regions; any other reader is internal."""
    purposes = data["purposes"]
    classes = data["charter"]["data_classes"]
    subs = data["subprocessors"].get("subprocessors", {})
    owned = {name for section in ("datasets", "derivative_flows")
             for name, d in purposes.get(section, {}).items() if d["purpose"] == pid}
    reads: dict[str, list[tuple[str, str]]] = {}
    for f in purposes.get("flows", {}).values():
        if f["from"] in owned:
            reads.setdefault(f["to"], []).append((f["from"], f["access_role"]))
    recipients, transfers = [], []
    for to, what in sorted(reads.items()):
        how = ", ".join(f"{source} as {role}" for source, role in sorted(set(what)))
        if to in subs:
            s = subs[to]
            touched = sorted({c for source, _ in what for c in _carried(purposes, source)}
                             & set(s["data_classes"]))
            recipients.append(f"{s['name']} ({to}; processor: {s['service']}; "
                              f"{', '.join(s['regions'])}; reads {how})")
            transfers += [f"{to}: {t}" for t in _transfers(s, classes, touched)]
        else:
            recipients.append(f"{to} (internal; reads {how})")
    return recipients, transfers


def processing_activities(data: Mapping[str, Any], measures: Sequence[Mapping[str, str]],
                          only: Iterable[str] | None = None,
                          cards: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One activity per purpose (``only``: these purposes, in that order). Recipients come from
    the declared flows and the derivative flows' readers, never from data-class overlap.
    ``cards``: verified data cards (``_training.card_facts``), folded in by their purpose."""
    charter = data["charter"]
    classes = charter["data_classes"]
    purposes = data["purposes"]["purposes"]
    datasets = data["purposes"].get("datasets", {})
    flows = data["purposes"].get("derivative_flows", {})
    activities = []
    for pid in (list(only) if only is not None else sorted(purposes)):
        p = purposes[pid]
        recipients, transfers = flow_recipients(data, pid)
        my_sets = {d: v for d, v in sorted(datasets.items()) if v["purpose"] == pid}
        my_flows = {f: v for f, v in sorted(flows.items()) if v["purpose"] == pid}
        readers = sorted({r for f in my_flows.values() for r in f["readers"]})
        recipients += [f"{r} (internal; derivative flows)" for r in readers]
        my_cards = sorted((c for c in cards if c["purpose"] == pid), key=lambda c: c["dataset"])
        recipients += card_recipients(my_cards)
        limits = [f"{pid}: {p['retention_days']} days"]
        limits += [f"dataset {d}: {v['retention_days']} days" if v.get("personal_data", True) is not False
                   else f"dataset {d}: none (no personal data; kept {v['retention_days']} days)"
                   for d, v in my_sets.items()]
        limits += [f"flow {f}: {v['retention_days']} days" for f, v in my_flows.items()]
        activities.append({
            "id": pid, "name": p["name"], "uses": list(p.get("uses", [])),
            "lawful_basis": p["lawful_basis"], "legitimate_interest": p.get("legitimate_interest"),
            "data_subjects": list(p["data_subjects"]),
            "personal_data": [f"{c}: {classes[c]['description']}" for c in p["data_classes"]
                              if classes[c]["personal"]],
            "special_categories": [c for c in p["data_classes"] if classes[c].get("special_category")],
            "other_data": [f"{c}: {classes[c]['description']}" for c in p["data_classes"]
                           if not classes[c]["personal"]],
            "recipients": recipients, "transfers": transfers, "erasure_time_limits": limits,
            "retention_days": p["retention_days"],
            "security_measures": [m["measure"] for m in measures],
            "datasets": [{"id": d, **v} for d, v in my_sets.items()],
            "derivative_flows": [{"id": f, **v} for f, v in my_flows.items()],
            "data_sources": [card_source(c) for c in my_cards],
        })
    return activities


def _count(items: Iterable[str]) -> str:
    return ", ".join(sorted(set(items)))


def security_measures(data: Mapping[str, Any], trust: Mapping[str, Any]) -> list[dict[str, str]]:
    """Art. 30(1)(g): the charter's ``security_measures`` when it states them, then what the bundle
    itself enforces (signed evidence, trust policy, freshness, assurances, human oversight)."""
    charter = data["charter"]
    measures = [{"category": m.get("category", "organisational"), "measure": m["description"],
                 "source": "charter.yaml"} for m in charter.get("security_measures", [])]
    idents = trust.get("identities", {})
    services = sorted(n for n, i in idents.items() if i.get("kind") == "service")
    people = sorted(n for n, i in idents.items() if i.get("kind") == "person")
    ages = trust.get("max_age_days", {})
    measures.append({"category": "technical", "source": "trust.yaml", "measure": (
        "Model promotions are gated on signed evidence: in-toto statements in DSSE envelopes, "
        f"verified against a trust policy of {len(idents)} identities (services: "
        f"{', '.join(services) or 'none'}; people: {', '.join(people) or 'none'}), each allowed to "
        "sign named predicate kinds only, with key validity windows, revocation and signature "
        "thresholds")})
    if ages:
        measures.append({"category": "technical", "source": "trust.yaml", "measure": (
            "Evidence freshness limits: " + ", ".join(f"{k} {v} days" for k, v in sorted(ages.items())))})
    measures.append({"category": "technical", "source": "slmgate", "measure": (
        "Every decision is signed by the gate and recorded in a tamper-evident git ledger; "
        "auditor packets carry the signed evidence and re-verify offline")})
    by_assurance: dict[str, list[str]] = {}
    for sid, s in sorted(data["subprocessors"].get("subprocessors", {}).items()):
        for a in s["assurances"]:
            by_assurance.setdefault(a, []).append(sid)
    if by_assurance:
        measures.append({"category": "organisational", "source": "subprocessors.yaml", "measure": (
            "Subprocessor assurances: " + "; ".join(f"{a} ({', '.join(s)})"
                                                   for a, s in sorted(by_assurance.items())))})
    stores = {d.get("store") for d in data["purposes"].get("datasets", {}).values()} - {None}
    if stores:
        measures.append({"category": "technical", "source": "purposes.yaml", "measure": (
            f"Training datasets are kept in named stores only ({_count(stores)})")})
    flows = data["purposes"].get("derivative_flows", {})
    if flows:
        measures.append({"category": "organisational", "source": "purposes.yaml", "measure": (
            "Derivative data (logged prompts, synthetic examples, labels) readable only by named "
            "readers: " + "; ".join(f"{f}: {', '.join(v['readers'])}" for f, v in sorted(flows.items())))})
    hitl = charter.get("risk_appetite", {}).get("human_in_the_loop", [])
    if hitl:
        measures.append({"category": "organisational", "source": "charter.yaml", "measure": (
            "Human in the loop for: " + "; ".join(hitl))})
    rollback = charter.get("rollback")
    if rollback:
        measures.append({"category": "organisational", "source": "charter.yaml", "measure": (
            f"Rollback within {rollback['max_rollback_minutes']} minutes ({rollback['mechanism']}), "
            f"owned by {rollback['owner']}, drilled at least every {rollback['drill_max_age_days']} days")})
    return measures


def processing_record(data: Mapping[str, Any], trust: Mapping[str, Any], *, as_of: datetime,
                      bundle_digest: str, policy_revision: str | None,
                      cards: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The whole Art. 30(1) record; ``check_processing`` first, so a bad bundle writes nothing.
    ``cards``: verified data cards whose access roles and provenance the activities take in."""
    check_processing(data)
    charter = data["charter"]
    measures = security_measures(data, trust)
    return {
        "record": "GDPR Art. 30(1) records of processing activities",
        "program": charter["program"], "title": charter["title"], "owner": charter["owner"],
        "controller": dict(charter["controller"]),
        "joint_controllers": charter.get("joint_controllers", "none"),
        "eu_representative": charter.get("eu_representative", "none"),
        "as_of": format_time(as_of), "bundle_digest": bundle_digest,
        "policy_revision": policy_revision,
        "activities": processing_activities(data, measures, cards=cards),
        "security_measures": measures,
        "data_classes": [{"id": c, "special_category": False, **v}
                         for c, v in sorted(charter["data_classes"].items())],
        "subprocessors": [{"id": s, "transfer_safeguard": None, **v} for s, v in
                          sorted(data["subprocessors"].get("subprocessors", {}).items())],
    }


def record_time(bundle: Any) -> datetime:
    """When the record speaks for, deterministically: SOURCE_DATE_EPOCH when set, else the time of
    the policy repository's commit, else the newest YAML file's modification time."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    if bundle.revision:
        import git

        try:
            repo = git.Repo(bundle.root, search_parent_directories=True)
            return repo.commit(bundle.revision).committed_datetime.astimezone(UTC)
        except (git.GitError, ValueError):
            pass
    times = [p.stat().st_mtime for p in Path(bundle.root).glob("*.yaml")]
    return datetime.fromtimestamp(int(max(times, default=0)), UTC)


def ropa_json(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def joint_controllers_text(record: Mapping[str, Any]) -> list[str]:
    """Art. 30(1)(a) joint controllers, one line each; ``["none"]`` when the charter says none."""
    joint = record.get("joint_controllers", "none")
    if joint == "none":
        return ["none"]
    return [f"{j['name']} <{j['contact']}> ({j['responsibilities']})" for j in joint]


def representative_text(record: Mapping[str, Any]) -> str:
    """The Art. 27 representative in the Union, or "none" as the charter states it."""
    rep = record.get("eu_representative", "none")
    return "none" if rep == "none" else f"{rep['name']} <{rep['contact']}>"


def _cell(values: Iterable[str], column: str, activity: str) -> str:
    items = [str(v) for v in values]
    for value in items:
        if "\n" in value or "\r" in value:
            raise InputError(f"ropa CSV: activity {activity}, column {column}: a value holds a line "
                             f"break, the CSV's separator of values: {value[:60]!r}",
                             advice="write the value on one line in the policy YAML")
    return CSV_SEPARATOR.join(items)


def ropa_csv(record: Mapping[str, Any], *, bom: bool = False) -> bytes:
    """One row per processing activity, RFC 4180 (CRLF between rows, quoted as needed), UTF-8.
    A cell with several values holds one per line (``CSV_SEPARATOR``, LF). ``bom``: start with
    a byte-order mark, for spreadsheets that guess the encoding otherwise."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    c = record["controller"]
    for a in record["activities"]:
        def cell(column: str, values: Iterable[str], aid: str = a["id"]) -> str:
            return _cell(values, column, aid)

        writer.writerow([
            a["id"], a["name"], cell("uses", a["uses"]), c["name"], c["contact"], c["dpo"],
            cell("joint_controllers", joint_controllers_text(record)), representative_text(record),
            a["lawful_basis"], a["legitimate_interest"] or "",
            cell("data_subjects", a["data_subjects"]),
            cell("personal_data_categories", a["personal_data"]),
            cell("special_categories", a["special_categories"]) or "none",
            cell("other_data_categories", a["other_data"]),
            cell("recipients", a["recipients"]) or "none",
            cell("third_country_transfers", a["transfers"]) or "none",
            cell("erasure_time_limits", a["erasure_time_limits"]),
            cell("security_measures", a["security_measures"]),
            cell("datasets", (f"{d['id']} ({d['description']}; {d['retention_days']} days"
                              + ("; no personal data" if d.get("personal_data", True) is False else "")
                              + ")" for d in a["datasets"])) or "none",
            cell("derivative_flows", (f"{f['id']} (from {f['source']}; readers {', '.join(f['readers'])})"
                                      for f in a["derivative_flows"])) or "none",
            cell("data_sources", a.get("data_sources", [])) or "none",
        ])
    return buf.getvalue().encode("utf-8-sig" if bom else "utf-8")


def render_ropa_pdf(record: Mapping[str, Any], out: Path, as_of: datetime) -> None:
    """The record as a PDF/A-3b through the packet pipeline, its JSON and CSV attached."""
    from slmgate.engine.packet._render import Attachment, render_document

    attachments = [
        Attachment("ropa.json", ropa_json(record), "The records of processing as JSON"),
        Attachment("ropa.csv", ropa_csv(record),
                   "One row per processing activity (RFC 4180; several values: one per line)",
                   media_type="text/csv"),
    ]
    render_document("ropa.html.j2", {"r": record}, attachments, out, as_of)


def packet_extract(data: Mapping[str, Any], deployment: Mapping[str, Any] | None,
                   training: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What a promotion touches: the serving purpose and the training datasets' purposes, their
    data classes, datasets and flows, and the subprocessors the deployment names."""
    if deployment is None and not training:
        return None
    purposes = data["purposes"]["purposes"]
    datasets = data["purposes"].get("datasets", {})
    why: dict[str, list[str]] = {}
    if deployment and deployment.get("purpose") in purposes:
        why.setdefault(deployment["purpose"], []).append("serving purpose of this deployment")
    named = {t.get("dataset") for t in training}
    used = list(dict.fromkeys(t["dataset"] for t in training if t.get("dataset") in datasets))
    for d in used:
        why.setdefault(datasets[d]["purpose"], []).append(f"purpose of training dataset {d}")
    classes_used = sorted({c for p in why for c in purposes[p]["data_classes"]}
                          | {c for d in used for c in datasets[d]["data_classes"]})
    charter_classes = data["charter"]["data_classes"]
    subs = data["subprocessors"].get("subprocessors", {})
    flows = data["purposes"].get("derivative_flows", {})
    return {
        "purposes": [{"id": p, **purposes[p], "why": "; ".join(w)} for p, w in why.items()],
        "data_classes": [{"id": c, **charter_classes[c]} for c in classes_used if c in charter_classes],
        "subprocessors": [{"id": s, **subs[s]} if s in subs else
                          {"id": s, "name": "not declared in subprocessors.yaml"}
                          for s in (deployment or {}).get("subprocessors", [])],
        "datasets": [{"id": d, **datasets[d]} for d in used],
        "flows": [{"id": f, **v} for f, v in sorted(flows.items())
                  if v["source"] in used or f in named],
    }
