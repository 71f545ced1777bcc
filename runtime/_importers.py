"""Importers: eval results made elsewhere, turned into the eval-result predicate.

- :func:`import_lm_eval` reads an lm-evaluation-harness results file (``results``, ``configs``,
  ``versions``, ``n-samples``, ``config``, ``date``) and refuses a run that did not evaluate
  every sample: ``config.limit`` set, or a task whose ``effective`` sample count is below its
  ``original`` one, or a task with no sample counts at all.
- :func:`import_model_index` (in ``_model_cards``) reads the ``model-index`` of a Hugging Face
  model card's YAML front matter.

Each task lands in one layer (``regression`` unless mapped otherwise). Each metric is named
``<task>__<metric>`` in the schema's alphabet (``[a-z0-9_]``: ``arc_easy__acc_norm``,
``gsm8k__exact_match__strict_match``) and becomes ``{"candidate": value, "baseline": None,
"task": ..., "metric": ...}`` with the source's own names kept, and its ``stderr`` where the
source gives one. Neither source says what a baseline scored: without a baseline file the
predicate's ``baseline`` is ``None`` too, and no drop against a baseline can be computed from
it. With one (``baseline=``, the baseline model's results in the same format), each metric's
baseline comes from it. ``imports.yaml`` (:func:`load_metric_map`) renames the metrics it maps
to a gate's layer and name. ``datasets`` lists the tasks whose data digest is known; ``tasks``
lists every task with its source, version, sample count and n-shot. Neither importer needs
torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from slmgate.evidence import format_time, parse_time
from slmgate.evidence.errors import InputError

from ._evals import LAYERS

LM_EVAL_HARNESS = "lm-evaluation-harness"
DEFAULT_LAYER = "regression"


def parse_layer_map(specs: tuple[str, ...] | list[str]) -> tuple[str, dict[str, str]]:
    """``--layer`` values: ``LAYER`` (the default for every task) or ``TASK=LAYER``."""
    default, per_task = DEFAULT_LAYER, {}
    for spec in specs:
        task, _, layer = spec.rpartition("=")
        if layer not in LAYERS:
            raise InputError(f"layer {layer!r} is not one of {', '.join(LAYERS)}", field="--layer")
        if task:
            per_task[task] = layer
        else:
            default = layer
    return default, per_task


def _layer_of(task: str, default: str, per_task: Mapping[str, str]) -> str:
    return per_task.get(task, default)


def _check_mapped(per_task: Mapping[str, str], tasks: set[str], file: str) -> None:
    unknown = sorted(set(per_task) - tasks)
    if unknown:
        raise InputError(f"--layer names task(s) not in the results: {', '.join(unknown)}",
                         file=file, advice=f"tasks here: {', '.join(sorted(tasks))}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _obj(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def metric_key(task: str, metric: str) -> str:
    """``("gsm8k", "exact_match,strict-match")`` -> ``gsm8k__exact_match__strict_match``."""
    parts = [re.sub(r"[^a-z0-9_]+", "_", p.lower()).strip("_") for p in (task, *metric.split(","))]
    key = "__".join(p for p in parts if p)
    return key if key[:1].isalpha() else f"m_{key}"


def _add_metric(target: dict[str, Any], task: str, metric: str, entry: dict[str, Any],
                file: str) -> None:
    """Put an unmapped metric under its ``<task>__<metric>`` name."""
    key = metric_key(task, metric)
    if key in target:
        raise InputError(f"{task} {metric} and {target[key]['task']} {target[key]['metric']} "
                         f"both become metric {key!r}", file=file)
    target[key] = entry


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(path)) from exc


def _evaluated_at(evaluated_at: str | None) -> str | None:
    if evaluated_at is None:
        return None
    try:
        return format_time(parse_time(evaluated_at, what="--evaluated-at"))
    except ValueError as exc:
        raise InputError(str(exc)) from exc


# --------------------------------------------------------------------------- lm-eval


def _lm_eval_full_run(doc: dict[str, Any], tasks: list[str], file: str) -> dict[str, int]:
    """Refuse partial runs; return each task's sample count."""
    limit = _obj(doc, "config").get("limit")
    if limit is not None:
        raise InputError(f"the run was made with limit={limit!r}: only part of each task was "
                         "evaluated", file=file, field="config.limit",
                         advice="re-run lm_eval without --limit")
    counts = doc.get("n-samples")
    if not isinstance(counts, dict):
        raise InputError("no n-samples: cannot tell whether every sample was evaluated",
                         file=file, field="n-samples",
                         advice="use a results file from lm-evaluation-harness 0.4.2 or later")
    examples: dict[str, int] = {}
    for task in tasks:
        entry = counts.get(task)
        original = entry.get("original") if isinstance(entry, dict) else None
        effective = entry.get("effective") if isinstance(entry, dict) else None
        if not isinstance(original, int) or not isinstance(effective, int):
            raise InputError(f"task {task!r} has no original/effective sample counts",
                             file=file, field=f"n-samples.{task}")
        if effective < original:
            raise InputError(f"task {task!r} evaluated {effective} of {original} samples",
                             file=file, field=f"n-samples.{task}",
                             advice="re-run the task on every sample (no --limit)")
        examples[task] = effective
    return examples


def _lm_eval_metrics(results: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    """``{"acc,none": 0.5, "acc_stderr,none": 0.01}`` -> ``{"acc": (0.5, 0.01)}``; the filter
    name is kept when it is not ``none`` (``exact_match,strict-match``); a stderr goes with its
    metric (``None`` when absent or ``"N/A"``); text is dropped."""
    values: dict[str, float] = {}
    for key, value in results.items():
        name, _, flt = key.partition(",")
        number = _number(value)
        if flt and number is not None:
            values[name if flt == "none" else f"{name},{flt}"] = number
    return {name: (value, values.get(_stderr_name(name))) for name, value in values.items()
            if not name.partition(",")[0].endswith("_stderr")}


def _stderr_name(metric: str) -> str:
    name, comma, flt = metric.partition(",")
    return f"{name}_stderr{comma}{flt}"


def _metric_entry(value: float, stderr: float | None, task: str, metric: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"candidate": value, "baseline": None, "task": task, "metric": metric}
    if stderr is not None:
        entry["stderr"] = stderr
    return entry


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key written twice and anchors/aliases, as policy files are read."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {seen[key].line + 1} and "
                    f"line {key_node.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


MAP_SECTIONS = {"lm-eval": ("\"TASK,METRIC\"", ","), "model-index": ("\"DATASET/METRIC\"", "/")}


def load_metric_map(path: str | Path, source: str = "lm-eval") -> dict[str, tuple[str, str]]:
    """imports.yaml: which external metric feeds which gate, for ``source``.

    ``lm-eval:`` maps ``"TASK,METRIC"`` (the filter kept when not ``none``:
    ``"gsm8k,exact_match,strict-match"``) and ``model-index:`` maps ``"DATASET/METRIC"`` (the
    dataset as the import names its task, ``type[config]:split``; the metric its type, then
    ``,config`` when it has one: ``"hellaswag:validation/acc_norm"``) to ``"LAYER.METRIC"`` of
    gates.yaml, so an imported result can satisfy ``gate.LAYER.METRIC.*``. A missing
    ``source`` section is refused naming it."""
    maps = load_metric_maps(path)
    if source not in maps:
        shape = MAP_SECTIONS[source][0]
        raise InputError(f"expected a mapping {source!r} of {shape}: LAYER.METRIC", file=str(path),
                         field=source)
    return maps[source]


def load_metric_maps(path: str | Path) -> dict[str, dict[str, tuple[str, str]]]:
    """Every section of imports.yaml, read as policy YAML is (duplicate keys, aliases refused);
    another top-level key, an empty section or a malformed entry is refused naming it."""
    file = str(path)
    try:
        doc = yaml.load(_read(Path(path)), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise InputError(f"not YAML as slmgate accepts it ({exc})", file=file) from exc
    if not isinstance(doc, dict) or not doc:
        raise InputError(f"expected a mapping with {' and/or '.join(MAP_SECTIONS)}", file=file)
    unknown = sorted(str(k) for k in doc if k not in MAP_SECTIONS)
    if unknown:
        raise InputError(f"unknown section(s) {', '.join(unknown)}; expected "
                         f"{' and/or '.join(MAP_SECTIONS)}", file=file, field=unknown[0])
    maps: dict[str, dict[str, tuple[str, str]]] = {}
    for source, section in doc.items():
        shape, separator = MAP_SECTIONS[source]
        if not isinstance(section, dict) or not section:
            raise InputError(f"expected a mapping {source!r} of {shape}: LAYER.METRIC", file=file,
                             field=source)
        out: dict[str, tuple[str, str]] = {}
        for key, target in section.items():
            layer, _, name = str(target).partition(".")
            if not isinstance(key, str) or separator not in key or layer not in LAYERS or \
                    not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise InputError(f"expected {shape}: LAYER.METRIC with LAYER one of "
                                 f"{', '.join(LAYERS)}, got {key!r}: {target!r}", file=file,
                                 field=f"{source}.{key}")
            if (layer, name) in out.values():
                raise InputError(f"two metrics map to {layer}.{name}", file=file,
                                 field=f"{source}.{key}")
            out[key] = (layer, name)
        maps[source] = out
    return maps


def with_baseline(predicate: dict[str, Any], base: dict[str, Any], baseline: str | Path,
                  baseline_subject: str | None, baseline_name: str | None) -> dict[str, Any]:
    """Each metric's baseline from the baseline model's import ``base`` (``None`` where it
    lacks the metric: a maximum-drop gate on it then fails); ``baseline_subject`` (hex sha256
    of the baseline's weights) names the baseline model."""
    for layer, body in predicate["layers"].items():
        for name, values in body["metrics"].items():
            other = base["layers"].get(layer, {}).get("metrics", {}).get(name)
            values["baseline"] = other["candidate"] if other else None
    predicate["baseline"] = ({"name": baseline_name or Path(baseline).stem,
                              "digest": {"sha256": baseline_subject}} if baseline_subject else None)
    predicate["baseline_source"] = base["source"]
    return predicate


def add_mapped(layer_metrics: dict[str, dict[str, Any]], mapped: tuple[str, str],
               entry: dict[str, Any], file: str, field: str) -> None:
    """Put a metric imports.yaml maps under the gate's layer and name."""
    layer, gate_metric = mapped
    target = layer_metrics.setdefault(layer, {})
    if gate_metric in target:
        raise InputError(f"two results map to {layer}.{gate_metric}", file=file, field=field)
    target[gate_metric] = entry


def import_lm_eval(path: str | Path, *, layers: tuple[str, ...] | list[str] = (),
                   evaluated_at: str | None = None, baseline: str | Path | None = None,
                   baseline_subject: str | None = None, baseline_name: str | None = None,
                   metric_map: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """The eval-result predicate of an lm-evaluation-harness results file.

    ``finished_at`` is the file's ``date`` plus ``total_evaluation_time_seconds``;
    ``evaluated_at`` only supplies a date the file does not carry (stale results cannot be made
    to look fresh). ``baseline`` is the baseline model's results file: each metric's baseline
    comes from it, so maximum-drop gates apply, and ``baseline_subject`` (hex sha256 of the
    baseline's weights) names it. ``metric_map`` (``load_metric_map``) renames mapped metrics to
    the gates' layer and name. Raises :class:`InputError`.
    """
    predicate = _import_lm_eval(path, layers=layers, evaluated_at=evaluated_at,
                                metric_map=metric_map or {})
    if baseline is None:
        return predicate
    base = _import_lm_eval(baseline, layers=layers, evaluated_at=None, metric_map=metric_map or {},
                           date_optional=True)
    return with_baseline(predicate, base, baseline, baseline_subject, baseline_name)


def _import_lm_eval(path: str | Path, *, layers: tuple[str, ...] | list[str],
                    evaluated_at: str | None, metric_map: dict[str, tuple[str, str]],
                    date_optional: bool = False) -> dict[str, Any]:
    path = Path(path)
    file = str(path)
    raw = _read(path)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not JSON ({exc})", file=file) from exc
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict) or not results:
        raise InputError("no results: not an lm-evaluation-harness results file",
                         file=file, field="results")
    # group_subtasks maps a group to its tasks, and a plain task to []: only the first are groups.
    subtasks = _obj(doc, "group_subtasks")
    groups = {g for g, members in subtasks.items() if members} | set(_obj(doc, "groups"))
    configs = _obj(doc, "configs")
    leaf_tasks = sorted(t for t in results if t not in groups)
    examples = _lm_eval_full_run(doc, leaf_tasks, file)
    default, per_task = parse_layer_map(layers)
    _check_mapped(per_task, set(results), file)

    layer_metrics: dict[str, dict[str, Any]] = {}
    for task in sorted(results):
        if not isinstance(results[task], dict):
            raise InputError("must be an object of metrics", file=file, field=f"results.{task}")
        metrics = _lm_eval_metrics(results[task])
        if not metrics:
            raise InputError(f"task {task!r} reports no numeric metric", file=file,
                             field=f"results.{task}")
        for name, (value, stderr) in sorted(metrics.items()):
            metric = _metric_entry(value, stderr, task, name)
            mapped = metric_map.get(f"{task},{name}")
            if mapped:  # imports.yaml: this metric feeds a gate
                add_mapped(layer_metrics, mapped, metric, file, f"results.{task}")
                continue
            _add_metric(layer_metrics.setdefault(_layer_of(task, default, per_task), {}),
                        task, name, metric, file)

    versions, hashes, shots = _obj(doc, "versions"), _obj(doc, "task_hashes"), _obj(doc, "n-shot")
    tasks, datasets = [], []
    for task in leaf_tasks:
        config = _obj(configs, task)
        entry: dict[str, Any] = {
            "layer": _layer_of(task, default, per_task), "name": task,
            "source": "/".join(str(config[k]) for k in ("dataset_path", "dataset_name")
                               if config.get(k)) or None,
            "version": versions.get(task), "examples": examples[task],
        }
        if isinstance(shots.get(task), int) and not isinstance(shots.get(task), bool):
            entry["n_shot"] = shots[task]
        tasks.append(entry)
        digest = hashes.get(task)  # lm-eval's sha256 of the task's samples, when logged
        if isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            datasets.append({"layer": entry["layer"], "name": task, "examples": examples[task],
                             "digest": {"sha256": digest.lower()}})

    run = _obj(doc, "config")
    start = _number(doc.get("date"))
    if start is not None and evaluated_at is not None:
        raise InputError("the results carry their own date; --evaluated-at only supplies a "
                         "missing one", file=file, field="date",
                         advice="drop --evaluated-at: the statement keeps the source's date")
    finished = _evaluated_at(evaluated_at)
    if finished is None and start is None and date_optional:
        finished = "1970-01-01T00:00:00Z"  # a baseline file: its date is not the statement's
    if finished is None:
        if start is None:
            raise InputError("no date: cannot tell when the evaluation ran", file=file,
                             field="date", advice="pass --evaluated-at RFC3339")
        try:
            took = float(doc.get("total_evaluation_time_seconds") or 0)
        except (TypeError, ValueError):
            took = 0.0
        finished = format_time(datetime.fromtimestamp(start + took, UTC))
    version = doc.get("lm_eval_version") or doc.get("git_hash") or "unknown"
    return {
        "suite": {"name": "+".join(leaf_tasks),
                  "version": ",".join(f"{t}@{versions.get(t, '?')}" for t in leaf_tasks)},
        "harness": {"name": LM_EVAL_HARNESS, "version": str(version)},
        "datasets": datasets,
        "tasks": tasks,
        "layers": {layer: {"metrics": metrics} for layer, metrics in sorted(layer_metrics.items())},
        "baseline": None,
        "serving": {"device": str(run.get("device") or "unknown"),
                    "dtype": str(run.get("model_dtype") or "unknown").removeprefix("torch."),
                    "batch_size": run.get("batch_size"), "model": run.get("model"),
                    "model_args": run.get("model_args")},
        "source": {"format": "lm-eval-results", "file": path.name,
                   "digest": {"sha256": hashlib.sha256(raw).hexdigest()}},
        "finished_at": finished,
    }
