"""The ``model-index`` of a Hugging Face model card (its YAML front matter) as an eval-result
predicate, read as the Hub's model-card specification lays it out: per model a list of
``results``, each a ``task`` (``type`` required), a ``dataset`` (``type`` required; ``name``,
``config``, ``split``, ``revision``, ``args`` such as ``num_few_shot``) and ``metrics`` (``type``
and a numeric ``value`` required; ``config``, ``args``, ``name``, ``verified``).

A result's task is named ``type[config]:split`` (``acme/support-tickets[routing]:test``), so the
validation and test splits of one dataset are two metrics, never "two values". A metric is its
``type``, then ``,config`` when it has one (``f1,macro``). A metric ``X_stderr`` next to ``X``,
or ``args.stderr``, is the stderr of ``X``. Nothing read is dropped: the task type, dataset name,
config, split, revision, n-shot and args go into ``tasks``; the source's values keep their
precision (percentages stay percentages).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from slmgate.evidence.errors import InputError

from ._importers import (
    _add_metric,
    _check_mapped,
    _evaluated_at,
    _layer_of,
    _metric_entry,
    _number,
    _read,
    _UniqueKeyLoader,
    add_mapped,
    parse_layer_map,
    with_baseline,
)

MODEL_INDEX = "model-index"


def _front_matter(text: str, file: str) -> Any:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise InputError("no YAML front matter (the card must start with a '---' line)", file=file)
    for end, line in enumerate(lines[1:], 1):
        if line.strip() == "---":
            try:
                return yaml.load("\n".join(lines[1:end]), Loader=_UniqueKeyLoader)
            except yaml.YAMLError as exc:
                raise InputError(f"front matter is not valid YAML: {exc}", file=file) from exc
    raise InputError("the YAML front matter is not closed by a '---' line", file=file)


def _as_list(value: Any, file: str, field: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InputError("must be a non-empty list", file=file, field=field)
    return value


def _as_dict(value: Any, file: str, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError("must be a mapping", file=file, field=field)
    return value


def _text(body: dict[str, Any], key: str, file: str, field: str, *,
          required: bool = False) -> str | None:
    """A scalar the spec gives as a string (YAML may read ``split: 2024`` as a number)."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise InputError(f"{key} is required", file=file, field=f"{field}.{key}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"must be a string, got {type(value).__name__}", file=file,
                         field=f"{field}.{key}")
    return str(value)


def _entry(meta: Any, model: str | None, file: str) -> tuple[int, dict[str, Any]]:
    if not isinstance(meta, dict) or MODEL_INDEX not in meta:
        raise InputError("the front matter has no model-index", file=file, field=MODEL_INDEX)
    entries = _as_list(meta[MODEL_INDEX], file, MODEL_INDEX)
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    if model is not None:
        if model not in names:
            raise InputError(f"no entry named {model!r} (entries: {names})", file=file,
                             field=MODEL_INDEX)
        index = names.index(model)
    elif len(entries) == 1:
        index = 0
    else:
        raise InputError(f"{len(entries)} entries ({names}); say which with --model",
                         file=file, field=MODEL_INDEX)
    return index, _as_dict(entries[index], file, f"{MODEL_INDEX}[{index}]")


def _task(result: dict[str, Any], file: str, where: str) -> tuple[str, dict[str, Any]]:
    """The task's name (``type[config]:split``) and what the card says about it."""
    task = _as_dict(result.get("task"), file, f"{where}.task")
    dataset = _as_dict(result.get("dataset"), file, f"{where}.dataset")
    kind = _text(dataset, "type", file, f"{where}.dataset", required=True)
    config = _text(dataset, "config", file, f"{where}.dataset")
    split = _text(dataset, "split", file, f"{where}.dataset")
    name = f"{kind}{f'[{config}]' if config else ''}{f':{split}' if split else ''}"
    args = dataset.get("args")
    shots = args.get("num_few_shot") if isinstance(args, dict) else None
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 0):
        raise InputError(f"expected a whole number of shots, got {shots!r}", file=file,
                         field=f"{where}.dataset.args.num_few_shot")
    source = result.get("source")
    info: dict[str, Any] = {
        "name": name,
        "task_type": _text(task, "type", file, f"{where}.task", required=True),
        "task_name": _text(task, "name", file, f"{where}.task"),
        "dataset": kind, "source": _text(dataset, "name", file, f"{where}.dataset"),
        "config": config, "split": split,
        "revision": _text(dataset, "revision", file, f"{where}.dataset"),
        "n_shot": shots, "args": _plain(args),
        "reported_by": source.get("name") if isinstance(source, dict) else None,
    }
    return name, {k: v for k, v in info.items() if v is not None}


def _plain(value: Any) -> Any:
    """A YAML value as JSON can carry it (a date becomes its ISO text)."""
    return json.loads(json.dumps(value, default=str))


def _metrics(result: dict[str, Any], file: str,
             where: str) -> dict[str, tuple[float, float | None, dict[str, Any]]]:
    """``{label: (value, stderr, {args, verified})}``: a metric ``X_stderr`` beside ``X`` is
    ``X``'s stderr."""
    values: dict[str, tuple[float, float | None]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for j, metric in enumerate(_as_list(result.get("metrics"), file, f"{where}.metrics")):
        field = f"{where}.metrics[{j}]"
        metric = _as_dict(metric, file, field)
        kind = _text(metric, "type", file, field, required=True)
        value = _number(metric.get("value"))
        if value is None:
            raise InputError(f"value must be a finite number, got {metric.get('value')!r}",
                             file=file, field=f"{field}.value",
                             advice="a '±' spread is not read: give it as args.stderr")
        config = _text(metric, "config", file, field)
        label = f"{kind},{config}" if config else str(kind)
        if label in values:
            raise InputError(f"metric {label!r} is given twice for this dataset", file=file,
                             field=field, advice="give the metrics distinct configs")
        args = metric.get("args")
        stderr = args.get("stderr") if isinstance(args, dict) else None
        if stderr is not None and _number(stderr) is None:
            raise InputError(f"expected a number, got {stderr!r}", file=file,
                             field=f"{field}.args.stderr")
        values[label] = (value, _number(stderr))
        extra[label] = {k: _plain(metric[k]) for k in ("args", "verified") if k in metric}
    for label in [k for k in values if k.partition(",")[0].endswith("_stderr")]:
        name, comma, config = label.partition(",")
        base = f"{name.removesuffix('_stderr')}{comma}{config}"
        if base in values:
            values[base] = (values[base][0], values.pop(label)[0])
    return {label: (value, stderr, extra[label]) for label, (value, stderr) in values.items()}


def _import_card(path: str | Path, *, model: str | None, layers: tuple[str, ...] | list[str],
                 evaluated_at: str | None, metric_map: dict[str, tuple[str, str]],
                 date_optional: bool = False) -> dict[str, Any]:
    path = Path(path)
    file = str(path)
    raw = _read(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 ({exc})", file=file) from exc
    index, entry = _entry(_front_matter(text, file), model, file)
    finished = _evaluated_at(evaluated_at)
    if finished is None and date_optional:
        finished = "1970-01-01T00:00:00Z"  # a baseline card: its date is not the statement's
    if finished is None:
        raise InputError("a model card's model-index does not say when its results were "
                         "measured", file=file, field=f"{MODEL_INDEX}[{index}]",
                         advice="pass --evaluated-at RFC3339 (when the evaluation ran)")
    default, per_task = parse_layer_map(layers)
    where = f"{MODEL_INDEX}[{index}].results"
    tasks: dict[str, dict[str, Any]] = {}
    layer_metrics: dict[str, dict[str, Any]] = {}
    for i, result in enumerate(_as_list(entry.get("results"), file, where)):
        result = _as_dict(result, file, f"{where}[{i}]")
        task, info = _task(result, file, f"{where}[{i}]")
        if task in tasks:
            raise InputError(f"dataset {task!r} appears twice (results[{tasks[task]['index']}] "
                             f"and results[{i}])", file=file, field=f"{where}[{i}].dataset",
                             advice="one result per dataset, config and split")
        tasks[task] = {"index": i, **info}
        for label, (value, stderr, extra) in sorted(_metrics(result, file,
                                                              f"{where}[{i}]").items()):
            metric = {**_metric_entry(value, stderr, task, label), **extra}
            mapped = metric_map.get(f"{task}/{label}")
            if mapped:  # imports.yaml: this metric feeds a gate
                add_mapped(layer_metrics, mapped, metric, file, f"{where}[{i}]")
                continue
            _add_metric(layer_metrics.setdefault(_layer_of(task, default, per_task), {}), task,
                        label, metric, file)
    _check_mapped(per_task, set(tasks), file)
    name = str(entry.get("name") or path.parent.name)
    return {
        "suite": {"name": f"model-index:{name}", "version": "1"},
        "harness": {"name": MODEL_INDEX, "version": "1"},
        "datasets": [],  # a card gives no digest of its data
        "tasks": [{"layer": _layer_of(task, default, per_task),
                   **{k: v for k, v in info.items() if k != "index"}}
                  for task, info in sorted(tasks.items())],
        "layers": {layer: {"metrics": metrics} for layer, metrics in sorted(layer_metrics.items())},
        "baseline": None,
        "serving": {"device": "unknown", "dtype": "unknown"},  # a card does not say
        "source": {"format": MODEL_INDEX, "file": path.name, "model": name,
                   "digest": {"sha256": hashlib.sha256(raw).hexdigest()}},
        "finished_at": finished,
    }


def import_model_index(path: str | Path, *, model: str | None = None,
                       layers: tuple[str, ...] | list[str] = (),
                       evaluated_at: str | None = None, baseline: str | Path | None = None,
                       baseline_model: str | None = None, baseline_subject: str | None = None,
                       baseline_name: str | None = None,
                       metric_map: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """The eval-result predicate of a model card's ``model-index`` (entry ``model``, or the only
    one).

    The model-index carries no date, so ``evaluated_at`` (when the evaluation ran) is required.
    ``baseline`` is the baseline model's card (entry ``baseline_model``, or its only one): each
    metric's baseline comes from it, so maximum-drop gates apply, and ``baseline_subject`` (hex
    sha256 of the baseline's weights) names it. ``metric_map`` (``load_metric_map(path,
    "model-index")``) renames mapped metrics to the gates' layer and name. Raises
    :class:`InputError` naming the file and the field.
    """
    predicate = _import_card(path, model=model, layers=layers, evaluated_at=evaluated_at,
                             metric_map=metric_map or {})
    if baseline is None:
        return predicate
    base = _import_card(baseline, model=baseline_model, layers=layers, evaluated_at=None,
                        metric_map=metric_map or {}, date_optional=True)
    return with_baseline(predicate, base, baseline, baseline_subject, baseline_name)
