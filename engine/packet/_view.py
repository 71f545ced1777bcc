"""The packet's view model: the content dict checked and normalised into exactly what
``packet.html.j2`` reads — every key present, an absent optional value None (rendered "—"), an
empty list meaning "there were none" — plus the inline SVG charts of the release diff."""

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
    "subject_digest", "file",
)
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
        row["message"] = reader_text(row["message"])
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


def packet_view(content: Mapping[str, Any]) -> dict[str, Any]:
    """Every key the packet template reads, present; absent optional values are None or []."""
    decision = _decision(content.get("decision"))
    request = _request(content.get("request"))
    evidence = _rows(content.get("evidence"), _EVIDENCE_KEYS, "evidence")
    for row in evidence or []:
        row["signers"] = _strings(row["signers"])
        row["failure"] = reader_text(row["failure"])
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
        "approvals": _rows(content.get("approvals"), _SIGNED_APPROVAL_KEYS, "approvals"),
        "serving": _section(content.get("serving"), _SERVING_KEYS, "serving"),
        "training": _training(content.get("training")),
        "charter": charter,
        "ropa": _ropa(content.get("ropa")),
        "controls": controls,
    }
