"""The eval runner: three layers (regression, stress, policy) of a golden suite, run over a
candidate and its baseline, reported as the eval-result predicate.

A suite is a directory with ``suite.yaml`` and one JSON-lines file per layer, each line
``{"label": ..., "text": ...}``. Anything missing or malformed raises :class:`SuiteError`,
naming the file and, for a bad line, its number; no partial result is ever returned.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ._model import load_model, predict

HARNESS_NAME = "slmgate.runtime"
SUITE_FILE = "suite.yaml"
LAYERS = ("regression", "stress", "policy")
_PRECISION = 6


class SuiteError(ValueError):
    """An eval suite is missing, malformed or does not fit the models; the message says where."""


# --------------------------------------------------------------------------- metrics

def accuracy(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str],
             escalation: str) -> float:
    """Share of examples routed to their gold label."""
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str],
             escalation: str) -> float:
    """Unweighted mean F1 over the suite labels present in the gold or the predicted labels."""
    present = [label for label in labels if label in set(gold) | set(pred)]
    scores = []
    for label in present:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def pii_escalation_recall(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str],
                          escalation: str) -> float:
    """Share of personal-data tickets (gold = escalation label) routed to the escalation queue."""
    routed = [p for g, p in zip(gold, pred, strict=True) if g == escalation]
    return sum(p == escalation for p in routed) / len(routed)


def false_escalation_rate(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str],
                          escalation: str) -> float:
    """Share of tickets without personal data routed to the escalation queue (lower is better)."""
    routed = [p for g, p in zip(gold, pred, strict=True) if g != escalation]
    return sum(p == escalation for p in routed) / len(routed)


Metric = Callable[[Sequence[str], Sequence[str], Sequence[str], str], float]
METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "pii_escalation_recall": pii_escalation_recall,
    "false_escalation_rate": false_escalation_rate,
}


# --------------------------------------------------------------------------- the suite

@dataclass(frozen=True)
class SuiteLayer:
    """One layer's examples, with the file they came from and the sha256 of its bytes."""

    layer: str
    file: str
    sha256: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class EvalSuite:
    """A parsed suite: its identity, label set, escalation label and three layers."""

    name: str
    version: str
    labels: tuple[str, ...]
    escalation_label: str
    layers: dict[str, SuiteLayer]


def default_suite_dir() -> Path:
    """The golden suite shipped in the package: ``slmgate.runtime/suites/support-triage``."""
    return Path(str(importlib.resources.files("slmgate.runtime") / "suites" / "support-triage"))


def _manifest_field(manifest: dict[str, Any], path: Path, key: str, kind: type) -> Any:
    value = manifest.get(key)
    if not isinstance(value, kind) or (isinstance(value, str | list) and not value):
        raise SuiteError(f"{path}: '{key}' must be a non-empty {kind.__name__}, got {value!r}")
    return value


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read suite manifest: {exc}") from exc
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SuiteError(f"{path}{where}: not valid YAML: {exc}") from exc
    if not isinstance(manifest, dict):
        raise SuiteError(f"{path}: the suite manifest must be a mapping")
    return manifest


def _read_layer(directory: Path, manifest_path: Path, layer: str, spec: Any,
                labels: Sequence[str], escalation: str) -> SuiteLayer:
    where = f"{manifest_path}: layers.{layer}"
    if not isinstance(spec, dict):
        raise SuiteError(f"{where} must be a mapping with 'file' and 'metrics'")
    file, metrics = spec.get("file"), spec.get("metrics")
    if not isinstance(file, str) or not file or Path(file).name != file:
        raise SuiteError(f"{where}.file must be a file name inside the suite, got {file!r}")
    if (not isinstance(metrics, list) or not metrics
            or not all(isinstance(m, str) and m in METRICS for m in metrics)):
        raise SuiteError(f"{where}.metrics must be a non-empty list drawn from "
                         f"{', '.join(METRICS)}, got {metrics!r}")
    path = directory / file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SuiteError(f"{path}: {layer} layer file not found") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read {layer} layer file: {exc}") from exc
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the empty remainder after the final newline
    examples = [_parse_line(raw, path, number, labels) for number, raw in enumerate(lines, 1)]
    texts = [text for text, _ in examples]
    gold = [label for _, label in examples]
    if not texts:
        raise SuiteError(f"{path}: no examples")
    if layer == "policy" and not (escalation in gold and any(g != escalation for g in gold)):
        raise SuiteError(f"{path}: the policy layer needs tickets labelled {escalation!r} "
                         "(personal data) and tickets with other labels")
    return SuiteLayer(layer, file, hashlib.sha256(data).hexdigest(), tuple(texts), tuple(gold),
                      tuple(metrics))


def _parse_line(raw: bytes, path: Path, number: int, labels: Sequence[str]) -> tuple[str, str]:
    where = f"{path} line {number}"
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{where}: not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(record, dict) or set(record) != {"text", "label"}:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise SuiteError(f"{where}: expected an object with exactly 'text' and 'label', "
                         f"got {keys}")
    text, label = record["text"], record["label"]
    if not isinstance(text, str) or not text.strip():
        raise SuiteError(f"{where}: 'text' must be a non-empty string")
    if label not in labels:
        raise SuiteError(f"{where}: label {label!r} is not one of {', '.join(labels)}")
    return text, label


def load_suite(suite_dir: str | Path | None = None) -> EvalSuite:
    """Read and check a suite directory (default: the shipped golden suite)."""
    directory = Path(suite_dir) if suite_dir is not None else default_suite_dir()
    manifest_path = directory / SUITE_FILE
    manifest = _read_manifest(manifest_path)
    name = _manifest_field(manifest, manifest_path, "name", str)
    version = _manifest_field(manifest, manifest_path, "version", str)
    labels = _manifest_field(manifest, manifest_path, "labels", list)
    escalation = _manifest_field(manifest, manifest_path, "escalation_label", str)
    if not all(isinstance(label, str) and label for label in labels) or escalation not in labels:
        raise SuiteError(f"{manifest_path}: 'labels' must be strings including the "
                         f"escalation label {escalation!r}, got {labels!r}")
    layers = manifest.get("layers")
    if not isinstance(layers, dict) or sorted(layers) != sorted(LAYERS):
        found = sorted(layers) if isinstance(layers, dict) else layers
        raise SuiteError(f"{manifest_path}: 'layers' must define exactly "
                         f"{', '.join(LAYERS)}, got {found!r}")
    return EvalSuite(
        name, version, tuple(labels), escalation,
        {layer: _read_layer(directory, manifest_path, layer, layers[layer], labels, escalation)
         for layer in LAYERS})


# --------------------------------------------------------------------------- the runner

def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _harness_version() -> str:
    try:
        return importlib.metadata.version("slmgate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_eval(candidate_dir: str | Path, baseline_dir: str | Path,
             suite_dir: str | Path | None = None, *, device: str = "cpu",
             dtype: str = "float32") -> dict[str, Any]:
    """Run every layer of the suite over the candidate and the baseline model.

    Returns the eval-result predicate (JSON-able, floats rounded to 6 decimals): suite and
    harness identity, each dataset's sha256 and size, per layer and metric the candidate's and
    the baseline's value, the serving device/dtype/torch version, and start/finish times.
    Raises :class:`SuiteError` for a missing or malformed suite, or models whose labels
    differ from the suite's.
    """
    import torch

    started_at = _utc_now()
    suite = load_suite(suite_dir)
    models = {"candidate": load_model(candidate_dir, device=device, dtype=dtype),
              "baseline": load_model(baseline_dir, device=device, dtype=dtype)}
    for role, model in models.items():
        if set(model.labels) != set(suite.labels):
            raise SuiteError(f"{role} model labels {list(model.labels)} differ from the labels "
                             f"of suite {suite.name!r}: {list(suite.labels)}")
    layers: dict[str, Any] = {}
    for name, layer in suite.layers.items():
        predictions = {role: predict(model, layer.texts) for role, model in models.items()}
        layers[name] = {"metrics": {
            metric: {role: round(METRICS[metric](layer.labels, predictions[role], suite.labels,
                                                 suite.escalation_label), _PRECISION)
                     for role in models}
            for metric in layer.metrics}}
    return {
        "suite": {"name": suite.name, "version": suite.version},
        "harness": {"name": HARNESS_NAME, "version": _harness_version()},
        "datasets": [{"layer": layer.layer, "name": layer.file, "digest": {"sha256": layer.sha256},
                      "examples": len(layer.texts)} for layer in suite.layers.values()],
        "layers": layers,
        "serving": {"device": models["candidate"].device, "dtype": models["candidate"].dtype,
                    "torch_version": torch.__version__},
        "started_at": started_at,
        "finished_at": _utc_now(),
    }
