"""The packet's view model: the content dict checked and normalised into exactly what
``packet.html.j2`` reads — every key present, an absent optional value None (rendered "—"), an
empty list meaning "there were none" — plus the inline SVG charts of the release diff.

A packet stays linear in its evidence: up to ``LISTED_MAX`` envelopes (or approvals) are
tables on the main pages; past that the main pages summarise them (by kind and signer, by role
and signer) and every item is one preformatted line of an appendix, cut into blocks of
``_APPENDIX_BLOCK`` lines. WeasyPrint lays a table row out as boxes within boxes, and one table
across many pages costs more per row the longer it gets; a block of lines costs the same per
line however many there are (bench/bench_packet.py, docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from slmgate.engine.packet._chart import layer_chart
from slmgate.engine.packet._wording import reader_text
from slmgate.evidence.errors import SlmgateError

__all__ = ["PacketError", "packet_view"]

_OUTCOMES = ("approve", "review", "deny")
_DASH = "—"


class PacketError(SlmgateError):
    """The packet could not be rendered from the content and attachments given."""


_DECISION_KEYS = (
    "id", "outcome", "exit_code", "tier", "summary", "evaluated_at", "bundle_digest",
    "policy_revision",
)
_FINDING_KEYS = ("rule_id", "severity", "message", "evidence_ref", "evidence_files", "evidence_note")
_CHECK_KEYS = ("rule_id", "passed", "message", "evidence_ref", "evidence_files", "evidence_note")
_APPROVAL_KEYS = ("role", "count")
_WAIVER_KEYS = ("id", "rule_id", "owner", "ticket", "expires", "reason")
_REQUEST_KEYS = ("id", "summary", "requested_by", "digest")
_MODEL_KEYS = ("name", "version", "weights_digest")
_DEPLOYMENT_KEYS = ("purpose", "regions", "subprocessors")
_METRIC_KEYS = ("layer", "metric", "baseline", "candidate", "delta", "gate", "passed", "bounds")
_EVIDENCE_KEYS = (
    "ref", "kind", "predicate_type", "signers", "signed_at", "verified", "failure",
    "subject_digest", "file", "envelope_sha256",
)
LISTED_MAX = 30  # envelopes or approvals shown row by row on the main pages
_APPENDIX_BLOCK = 50  # lines per preformatted block of an appendix
_MESSAGE_MAX = 600  # characters of a policy message in a findings or checks cell
_REF_MAX = 32  # an envelope's reference is cut past this (its digest still names the attached file)
_LINE = 118  # characters per appendix line: 6.5 pt mono across the A4 text width (~128)
_SIGNED_APPROVAL_KEYS = ("ref", "signer", "role", "approved_at", "request_bound", "comment")
_SERVING_KEYS = (
    "device", "dtype", "torch_version", "batch_size", "latency_ms_p50", "latency_ms_p95",
    "throughput_per_s", "slo",
)
_CHARTER_KEYS = ("program", "problem_statement", "owner", "human_in_the_loop")
_CLASS_KEYS = ("id", "description", "tier")
_FILE_KEYS = ("name", "digest")
_TRAINING_KEYS = ("dataset", "oldest_record", "purpose")
_TRAINING_RUN_KEYS = ("builder", "build_type", "signers", "base_model")
_TRAINING_ROW_KEYS = (
    "dataset", "depth", "digest", "category", "origin", "purpose", "lawful_basis", "oldest_record",
    "newest_record", "rows", "access_role", "retention_days", "signers", "carded",
)
_CONTROL_KEYS = ("framework", "control", "title", "requirement", "sections", "status", "note")
_ROPA_ROWS = {
    "purposes": ("id", "name", "lawful_basis", "legitimate_interest", "data_subjects",
                 "data_classes", "retention_days", "why"),
    "data_classes": ("id", "description", "personal", "special_category", "residency"),
    "subprocessors": ("id", "name", "service", "regions", "assurances", "transfer_safeguard",
                      "data_classes"),
    "datasets": ("id", "purpose", "description", "data_classes", "store", "retention_days"),
    "flows": ("id", "source", "purpose", "description", "readers", "retention_days"),
}


def _section(value: Any, keys: Sequence[str], where: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise PacketError(f"{where} must be an object, got {type(value).__name__}")
    return {key: value.get(key) for key in keys}


def _rows(value: Any, keys: Sequence[str], where: str) -> list[dict[str, Any]] | None:
    """None stays None: an absent list renders "—", an empty one says there were none."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise PacketError(f"{where} must be a list, got {type(value).__name__}")
    return [_section(row, keys, f"{where}[{i}]") for i, row in enumerate(value)]


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value or []]


def _decision(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise PacketError("content is missing required key 'decision'")
    decision = _section(raw, _DECISION_KEYS, "decision")
    if not decision["id"]:
        raise PacketError("content is missing required key 'decision.id'")
    if decision["outcome"] not in _OUTCOMES:
        raise PacketError(
            f"decision.outcome must be one of {', '.join(_OUTCOMES)}, "
            f"got {decision['outcome']!r}"
        )
    for key, keys in (("findings", _FINDING_KEYS), ("checks", _CHECK_KEYS),
                      ("approvals_needed", _APPROVAL_KEYS), ("waivers_applied", _WAIVER_KEYS),
                      ("waivers_expired", _WAIVER_KEYS)):
        decision[key] = _rows(raw.get(key), keys, key)
    for row in [*(decision["findings"] or []), *(decision["checks"] or [])]:
        row["evidence_files"] = _strings(row["evidence_files"])
        row["message"] = _bounded(reader_text(row["message"]))
    return decision


def _request(raw: Any) -> dict[str, Any]:
    raw = raw or {}
    request = _section(raw, _REQUEST_KEYS, "request")
    request["model"] = _section(raw.get("model"), _MODEL_KEYS, "request.model")
    request["baseline"] = _section(raw.get("baseline"), _MODEL_KEYS, "request.baseline")
    request["change_classes"] = _strings(raw.get("change_classes"))
    request["changes"] = _strings(raw.get("changes"))
    deployment = raw.get("deployment")
    request["deployment"] = (None if deployment is None else
                             _section(deployment, _DEPLOYMENT_KEYS, "request.deployment"))
    request["training_data"] = _rows(raw.get("training_data"), _TRAINING_KEYS,
                                     "request.training_data")
    return request


def _release(raw: Any) -> dict[str, Any]:
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise PacketError(f"release must be an object, got {type(raw).__name__}")
    return {
        "change_classes": _rows(raw.get("change_classes"), _CLASS_KEYS, "release.change_classes"),
        "files": _rows(raw.get("files"), _FILE_KEYS, "release.files"),
        "files_total": raw.get("files_total"),
        "files_source": raw.get("files_source"),
    }


def _ropa(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise PacketError(f"ropa must be an object, got {type(raw).__name__}")
    return {key: _rows(raw.get(key), keys, f"ropa.{key}") for key, keys in _ROPA_ROWS.items()}


def _training(raw: Any) -> dict[str, Any]:
    """The training provenance: ``run`` None without a verified training-run."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise PacketError(f"training must be an object, got {type(raw).__name__}")
    run = raw.get("run")
    return {"run": None if run is None else _section(run, _TRAINING_RUN_KEYS, "training.run"),
            "datasets": _rows(raw.get("datasets") or [], _TRAINING_ROW_KEYS, "training.datasets")}


def _charts(metrics: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for row in metrics or []:
        by_layer.setdefault(str(row["layer"] or _DASH), []).append(row)
    return [{"layer": layer, "svg": Markup(layer_chart(rows))} for layer, rows in by_layer.items()]


def _bounded(message: Any) -> Any:
    """A policy message cut at ``_MESSAGE_MAX`` characters in a table cell: a message naming a
    thousand refused envelopes would be one cell across dozens of pages, which WeasyPrint lays
    out again for every page it spans. The whole message stays in the attached signed record."""
    if not isinstance(message, str) or len(message) <= _MESSAGE_MAX:
        return message
    return (f"{message[:_MESSAGE_MAX].rstrip()} … (cut at {_MESSAGE_MAX} of {len(message):,} characters; "
            "the whole message is in the attached signed decision record)")


def _cut(text: Any, width: int) -> str:
    value = _DASH if text is None or text == "" else " ".join(str(text).split())
    return value if len(value) <= width else value[: width - 1] + "…"


def _blocks(lines: list[str]) -> list[str]:
    return ["\n".join(lines[i:i + _APPENDIX_BLOCK]) for i in range(0, len(lines), _APPENDIX_BLOCK)]


def _evidence_lines(evidence: list[dict[str, Any]], approvals: list[dict[str, Any]]) -> list[str]:
    """One line per envelope (two when refused: the reason under it), numbered in request order;
    an approval's signers say whether each signature is bound to this request."""
    bound: dict[str, list[str]] = {}
    for a in approvals:
        bound.setdefault(str(a["ref"]), []).append(
            f"{'bound' if a['request_bound'] else 'NOT BOUND'}: {a['signer']} ({a['role']})")
    width = len(str(len(evidence)))
    refs = min(max((len(str(e["ref"])) for e in evidence), default=1), _REF_MAX)
    lines = []
    for i, e in enumerate(evidence, 1):
        digest = f"sha256:{str(e['envelope_sha256'])[:12]}" if e["envelope_sha256"] else "not attached"
        verdict = "verified" if e["verified"] else "REFUSED"
        head = (f"{i:>{width}} {_cut(e['ref'], refs):<{refs}} {_cut(e['kind'], 16):<16} "
                f"{verdict:<8} {_cut(e['signed_at'], 20):<20} {digest:<19} ")
        signers = ", ".join(bound.get(str(e["ref"])) or e["signers"]) or _DASH
        lines.append(head + _cut(signers, max(_LINE - len(head), 8)))
        if not e["verified"]:
            lines.append(" " * (width + 1) + _cut(f"refused: {e['failure'] or _DASH}", _LINE - width - 1))
    return lines


def _summary(rows: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    """Rows counted by ``key`` (a tuple naming the group), in order of first appearance."""
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(key(row), {"group": key(row), "count": 0, "verified": 0})
        group["count"] += 1
        group["verified"] += 1 if row.get("verified", row.get("request_bound")) else 0
    return list(groups.values())


def _listing(evidence: list[dict[str, Any]] | None, approvals: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Past ``LISTED_MAX`` envelopes or approvals, the summaries the main pages show instead of
    one row each, and the appendix of every envelope; None when the main pages list them all."""
    many = len(evidence or []) > LISTED_MAX or len(approvals or []) > LISTED_MAX
    return {
        "evidence_summary": _summary(evidence or [], lambda e: (e["kind"] or _DASH,
                                                               ", ".join(e["signers"]) or _DASH))
        if many else None,
        "evidence_appendix": _blocks(_evidence_lines(evidence or [], approvals or [])) if many else None,
        "approval_summary": _summary(approvals or [], lambda a: (a["role"] or _DASH, a["signer"] or _DASH))
        if many else None,
        "listed_max": LISTED_MAX,
    }


def packet_view(content: Mapping[str, Any]) -> dict[str, Any]:
    """Every key the packet template reads, present; absent optional values are None or []."""
    decision = _decision(content.get("decision"))
    request = _request(content.get("request"))
    evidence = _rows(content.get("evidence"), _EVIDENCE_KEYS, "evidence")
    for row in evidence or []:
        row["signers"] = _strings(row["signers"])
        row["failure"] = reader_text(row["failure"])
    approvals = _rows(content.get("approvals"), _SIGNED_APPROVAL_KEYS, "approvals")
    metrics = _rows(content.get("metrics"), _METRIC_KEYS, "metrics")
    controls = _rows(content.get("controls"), _CONTROL_KEYS, "controls")
    for row in controls or []:
        row["sections"] = _rows(row["sections"] or [], ("id", "title"), "controls.sections")
    charter = _section(content.get("charter"), _CHARTER_KEYS, "charter")
    charter["human_in_the_loop"] = _strings(charter["human_in_the_loop"])
    model = request["model"]
    model_label = " ".join(str(p) for p in (model["name"], model["version"]) if p)
    return {
        "title": content.get("title") or f"Promotion packet — {model_label or decision['id']}",
        "generated_at": content.get("generated_at"),
        "model_label": model_label or _DASH,
        "decision": decision,
        "request": request,
        "release": _release(content.get("release")),
        "metrics": metrics,
        "charts": _charts(metrics),
        "evidence": evidence,
        "approvals": approvals,
        "listing": _listing(evidence, approvals),
        "serving": _section(content.get("serving"), _SERVING_KEYS, "serving"),
        "training": _training(content.get("training")),
        "charter": charter,
        "ropa": _ropa(content.get("ropa")),
        "controls": controls,
    }
