"""`slmgate evidence hash|capture|eval|import`: the runtime-side producers of evidence.

``hash`` needs no torch. ``capture`` and ``eval`` import ``slmgate.runtime`` (and so torch) inside
the command only; ``import`` reads files made elsewhere. Every statement they sign is about the
weights root digest of the model directory (sha256, per file: what promotion requests name).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import click

from slmgate.engine.cli._common import FORMAT, emit, guarded
from slmgate.engine.cli._evidence import evidence
from slmgate.evidence import (
    DEFAULT_IGNORED,
    HashAlgorithm,
    ManifestDiff,
    SigningKey,
    WeightsManifest,
    hash_model_dir,
    make_statement,
    sign_envelope,
    write_atomic,
)
from slmgate.evidence.errors import InputError

EXIT_MISMATCH = 1


# --------------------------------------------------------------------------- shared


class _ProgressBar:
    """Feeds ``hash_model_dir``'s progress calls (one at a time) into a click progress bar."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self._label, file=sys.stderr,
                                          show_pos=False, show_percent=True)
            self._bar.__enter__()
        self._bar.update(done - self._shown)
        self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    bar = _ProgressBar(label)
    try:
        yield bar
    finally:
        bar.close()


def _weights_root(model_dir: Path) -> str:
    """The root digest a promotion request names: sha256, per file."""
    with _progress("hashing weights") as progress:
        return hash_model_dir(model_dir, progress=progress).root_digest


def _subject_name(name: str | None, model_dir: Path) -> str:
    return name or model_dir.resolve().name


def _sign_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
                      help="Where the signed envelope goes (with --sign).")(fn)
    return click.option("--sign", "sign_keys", type=click.Path(path_type=Path), multiple=True,
                        metavar="KEY", help="Sign the statement with this private key "
                        "(repeat for several signatures); needs -o.")(fn)


def _check_sign(sign_keys: tuple[Path, ...], output: Path | None) -> list[SigningKey]:
    if bool(sign_keys) != (output is not None):
        raise InputError("--sign and -o/--output go together", field="--sign")
    return [SigningKey.load(k) for k in sign_keys]


def _emit_statement(fmt: str, signers: list[SigningKey], output: Path | None, kind: str,
                    subject_name: str, subject: str, predicate: dict[str, Any], text: str) -> None:
    """Print the predicate (json) or ``text``; with signers, also write the signed envelope."""
    if signers:
        assert output is not None
        statement = make_statement(subject_name, subject, kind, predicate)
        write_atomic(output, sign_envelope(statement, signers).to_json())
        click.echo(f"signed {kind} about sha256:{subject} with {len(signers)} key(s) -> {output}",
                   err=True)
    emit(fmt, predicate, text)


def _runtime_errors(exc: Exception, model_dir: Path) -> InputError:
    """Device, dtype and model-folder problems from the runtime are bad input (exit 2)."""
    return InputError(str(exc), file=str(model_dir))


def _subject(value: str) -> str:
    digest = value.lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InputError(f"expected sha256:<64 hex digits>, got {value!r}", field="--subject")
    return digest


# --------------------------------------------------------------------------- hash


def manifest_document(manifest: WeightsManifest) -> dict[str, Any]:
    """The ``--format json`` output of ``evidence hash``; ``--expect`` reads it back."""
    return {"model_name": manifest.model_name, "root_digest": f"sha256:{manifest.root_digest}",
            "serialization": manifest.serialization,
            "resources": [r.__dict__ for r in manifest.resources]}


def _load_expected(path: Path) -> tuple[WeightsManifest, str | None]:
    """An expected manifest, from ``evidence hash --format json`` output, a v1.0 predicate, an
    in-toto statement, a DSSE envelope or a model-signing bundle (their payload is read, not
    verified: ``evidence verify`` does that). Returns it and the root digest it claims."""
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(path)) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not JSON ({exc})", file=str(path)) from exc
    if isinstance(doc, dict) and isinstance(doc.get("dsseEnvelope"), dict):
        doc = doc["dsseEnvelope"]  # a model-signing (sigstore) bundle
    if isinstance(doc, dict) and isinstance(doc.get("payload"), str):
        try:
            doc = json.loads(base64.b64decode(doc["payload"], validate=True))
        except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"envelope payload is not base64 JSON ({exc})", file=str(path)) from exc
    claimed, name = None, path.stem
    if isinstance(doc, dict) and isinstance(doc.get("predicate"), dict):
        subjects = doc.get("subject") or [{}]
        claimed = (subjects[0].get("digest") or {}).get("sha256")
        name = subjects[0].get("name", name)
        doc = doc["predicate"]
    elif isinstance(doc, dict) and isinstance(doc.get("root_digest"), str):
        claimed = doc["root_digest"].removeprefix("sha256:")
        name = doc.get("model_name", name)
    try:
        manifest = WeightsManifest.from_predicate(str(name), doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"not a weights manifest ({type(exc).__name__}: {exc})",
                         file=str(path)) from exc
    if claimed is not None and claimed.lower() != manifest.root_digest:
        raise InputError(f"inconsistent: its resources hash to sha256:{manifest.root_digest}, "
                         f"it claims sha256:{claimed}", file=str(path))
    return manifest, claimed


def _diff_text(model_dir: Path, expect: Path, diff: ManifestDiff) -> str:
    lines = [f"FAIL: {model_dir} differs from {expect}"]
    for label, names in (("extra", diff.extra), ("missing", diff.missing),
                         ("changed", diff.changed)):
        lines.extend(f"  {label}: {name}" for name in names)
    return "\n".join(lines)


@evidence.command("hash")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--algorithm", type=click.Choice(["sha256", "blake3"]), default=None,
              help="Digest of each file or shard [default: sha256, or the --expect manifest's].")
@click.option("--shard-size", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Serialize per shard of this many bytes (model-signing's 'shards') instead "
                   "of per file.")
@click.option("--expect", type=click.Path(path_type=Path), default=None, metavar="MANIFEST.json",
              help="Compare with this manifest (its serialization is used); exit 1 and a sorted "
                   "diff when they differ.")
@click.option("--name", default=None, help="Model name for the manifest (default: folder name).")
@FORMAT
@guarded
def evidence_hash(model_dir: Path, algorithm: str | None, shard_size: int | None,
                  expect: Path | None, name: str | None, fmt: str) -> None:
    """Hash a model directory into a manifest; print its root digest (json: the manifest)."""
    ignore: tuple[str, ...] | None = None
    expected = None
    if expect is not None:
        expected, _ = _load_expected(expect)
        if algorithm is not None and algorithm != expected.hash_type:
            raise InputError(f"--algorithm {algorithm} but the manifest uses {expected.hash_type}",
                             file=str(expect))
        if shard_size is not None and shard_size != expected.shard_size:
            raise InputError(f"--shard-size {shard_size} but the manifest's is "
                             f"{expected.shard_size}", file=str(expect))
        if expected.hash_type not in ("sha256", "blake3"):
            raise InputError(f"hash type {expected.hash_type!r} is not supported",
                             file=str(expect))
        algorithm, shard_size, ignore = expected.hash_type, expected.shard_size, expected.ignore_paths
        if set(ignore) != set(DEFAULT_IGNORED):
            click.echo(f"note: {expect} leaves out these paths, so they are not compared: "
                       f"{', '.join(ignore) or '(none: .git is hashed too)'}", err=True)
    kwargs: dict[str, Any] = {} if ignore is None else {"ignore_paths": ignore}
    with _progress("hashing") as progress:
        manifest = hash_model_dir(model_dir, model_name=name,
                                  algorithm=cast(HashAlgorithm, algorithm or "sha256"),
                                  shard_size=shard_size, progress=progress, **kwargs)
    doc = manifest_document(manifest)
    summary = (f"sha256:{manifest.root_digest}  {model_dir} "
               f"({len(manifest.resources)} {'shards' if shard_size else 'files'}, "
               f"{manifest.method}/{manifest.hash_type})")
    if expected is None or expect is None:
        emit(fmt, doc, summary)
        return
    diff = expected.diff(manifest)
    doc["expect"] = {"file": str(expect), "matches": not diff, **diff.to_json()}
    if diff:
        emit(fmt, doc, _diff_text(model_dir, expect, diff))
        sys.exit(EXIT_MISMATCH)
    emit(fmt, doc, f"OK: {model_dir} matches {expect}\n{summary}")


# --------------------------------------------------------------------------- capture


@evidence.command("capture")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--device", required=True, metavar="cpu|cuda[:N]",
              help="The device the model will be served on.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), required=True)
@click.option("--batch-size", type=click.IntRange(min=1), required=True)
@click.option("--sequence-length", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--name", default=None, help="Subject name (default: folder name).")
@_sign_options
@FORMAT
@guarded
def evidence_capture(model_dir: Path, device: str, dtype: str, batch_size: int,
                     sequence_length: int, warmup: int, iterations: int, name: str | None,
                     sign_keys: tuple[Path, ...], output: Path | None, fmt: str) -> None:
    """Load the model on the device, time a smoke run, and print the serving config; with --sign,
    a signed serving-config statement about the weights' root digest."""
    signers = _check_sign(sign_keys, output)
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise InputError(f"device must be cpu, cuda or cuda:N, got {device!r}", field="--device")
    from slmgate.runtime import DeviceUnavailableError, capture_serving_config  # torch from here on

    root = _weights_root(model_dir)
    try:
        config = capture_serving_config(model_dir, device=device, dtype=dtype,
                                        batch_size=batch_size, sequence_length=sequence_length,
                                        warmup=warmup, iterations=iterations)
    except (DeviceUnavailableError, ValueError, FileNotFoundError) as exc:
        raise _runtime_errors(exc, model_dir) from exc
    if signers and _weights_root(model_dir) != root:
        raise InputError("the weights changed while they were being measured", file=str(model_dir))
    latency = config["latency_ms"]
    text = (f"{config['device']['type']} ({config['device']['name']}) {dtype} batch {batch_size}: "
            f"p50 {latency['p50']:.3f} ms, p95 {latency['p95']:.3f} ms, "
            f"{config['throughput_per_s']:.0f}/s; tensors sha256:{config['tensor_digest']['sha256']}"
            f"\nweights sha256:{root}")
    _emit_statement(fmt, signers, output, "serving-config", _subject_name(name, model_dir), root,
                    config, text)


# --------------------------------------------------------------------------- eval


@evidence.command("eval")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), required=True,
              help="The baseline model directory (the one in production).")
@click.option("--suite", type=click.Path(path_type=Path), default=None,
              help="Golden suite directory (default: the shipped support-triage suite).")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True)
@click.option("--name", default=None,
              help="Model name, for the subject and the baseline (default: folder name).")
@_sign_options
@FORMAT
@guarded
def evidence_eval(model_dir: Path, baseline: Path, suite: Path | None, device: str, dtype: str,
                  name: str | None, sign_keys: tuple[Path, ...], output: Path | None,
                  fmt: str) -> None:
    """Run the three layers (regression, stress, policy) over the candidate and the baseline;
    print the eval result; with --sign, a signed eval-result statement."""
    signers = _check_sign(sign_keys, output)
    from slmgate.runtime import DeviceUnavailableError, SuiteError, run_eval  # torch from here on

    root = _weights_root(model_dir)
    baseline_root = _weights_root(baseline)
    try:
        predicate = run_eval(model_dir, baseline, suite, device=device, dtype=dtype)
    except (SuiteError, DeviceUnavailableError, ValueError, FileNotFoundError) as exc:
        raise _runtime_errors(exc, model_dir) from exc
    if signers and (_weights_root(model_dir), _weights_root(baseline)) != (root, baseline_root):
        raise InputError("the weights changed while they were being evaluated",
                         file=str(model_dir))
    subject_name = _subject_name(name, model_dir)
    predicate["baseline"] = {"name": subject_name, "digest": {"sha256": baseline_root}}
    lines = [f"{predicate['suite']['name']} v{predicate['suite']['version']} on "
             f"{predicate['serving']['device']} {predicate['serving']['dtype']}: "
             "candidate vs baseline"]
    for layer, body in predicate["layers"].items():
        for metric, values in body["metrics"].items():
            lines.append(f"  {layer}.{metric}: {values['candidate']:.4f} "
                         f"(baseline {values['baseline']:.4f})")
    lines.append(f"weights sha256:{root}, baseline sha256:{baseline_root}")
    _emit_statement(fmt, signers, output, "eval-result", subject_name, root, predicate,
                    "\n".join(lines))


# --------------------------------------------------------------------------- import


@evidence.group("import")
def evidence_import() -> None:
    """Turn eval results made elsewhere into eval-result predicates: compared with the
    baseline's results when --baseline is given (else baseline: null, and no maximum-drop gate
    can pass), metrics named for the gates through the policy repository's imports.yaml."""


def _import_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--evaluated-at", default=None, metavar="RFC3339",
                      help="When the results were measured (the freshness clock).")(fn)
    fn = click.option("--layer", "layers", multiple=True, metavar="LAYER|TASK=LAYER",
                      help="regression, stress or policy: for every task, or TASK=LAYER for "
                           "one (repeatable) [default: regression].")(fn)
    fn = click.option("--name", default=None, help="Subject name (default: the model's).")(fn)
    return click.option("--subject", required=True, metavar="sha256:HEX",
                        help="Root digest of the weights these results are about.")(fn)


def _import_text(predicate: dict[str, Any], source: Path) -> str:
    """What was imported, one metric a line, each with the key imports.yaml maps it by."""
    base = predicate.get("baseline")
    separator = "/" if predicate["harness"]["name"] == "model-index" else ","
    lines = [f"{source}: {predicate['harness']['name']} {predicate['harness']['version']}, "
             f"measured {predicate['finished_at']} "
             f"({'baseline sha256:' + base['digest']['sha256'][:16] + '…' if base else 'no baseline'})"]
    for layer, body in predicate["layers"].items():
        lines.extend(f"  {layer}.{metric}: {values['candidate']}"
                     + (f" (baseline {values['baseline']})" if values.get("baseline") is not None else "")
                     + (f" ± {values['stderr']}" if values.get("stderr") is not None else "")
                     + f"  [{values.get('task')}{separator}{values.get('metric')}]"
                     for metric, values in body["metrics"].items())
    return "\n".join(lines)


def _baseline_options(fmt: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--baseline, --baseline-subject and --imports, worded for ``fmt`` (the source's files)."""
    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--imports", "imports_file", type=click.Path(path_type=Path),
                          default=None, metavar="imports.yaml",
                          help=f"The policy repository's metric map (its {fmt!r} section), so an "
                               "imported result can satisfy that gate of gates.yaml.")(fn)
        fn = click.option("--baseline-subject", default=None, metavar="sha256:HEX",
                          help="Root digest of the baseline's weights (the request's baseline), "
                               "with --baseline.")(fn)
        what = "RESULTS.json" if fmt == "lm-eval" else "README.md"
        return click.option("--baseline", type=click.Path(path_type=Path), default=None,
                            metavar=what, help=f"The baseline model's {what}: each metric's "
                            "baseline comes from it, so maximum-drop gates apply.")(fn)
    return add


def _baseline_digest(baseline: Path | None, baseline_subject: str | None) -> str | None:
    if (baseline is None) != (baseline_subject is None):
        raise InputError("--baseline and --baseline-subject go together", field="--baseline")
    return _subject(baseline_subject) if baseline_subject else None


@evidence_import.command("lm-eval")
@click.argument("results", type=click.Path(path_type=Path))
@_import_options
@_baseline_options("lm-eval")
@_sign_options
@FORMAT
@guarded
def import_lm_eval_cmd(results: Path, subject: str, name: str | None, layers: tuple[str, ...],
                       evaluated_at: str | None, baseline: Path | None,
                       baseline_subject: str | None, imports_file: Path | None,
                       sign_keys: tuple[Path, ...], output: Path | None, fmt: str) -> None:
    """An lm-evaluation-harness results file; refused when not every sample was evaluated.

    The statement keeps the file's own date: --evaluated-at only supplies a missing one.
    imports.yaml maps "TASK,METRIC" (e.g. "hellaswag,acc") to LAYER.METRIC of gates.yaml."""
    from slmgate.runtime import import_lm_eval
    from slmgate.runtime._importers import load_metric_map

    digest = _subject(subject)
    base_digest = _baseline_digest(baseline, baseline_subject)
    signers = _check_sign(sign_keys, output)
    predicate = import_lm_eval(results, layers=layers, evaluated_at=evaluated_at,
                               baseline=baseline, baseline_subject=base_digest,
                               metric_map=load_metric_map(imports_file) if imports_file else None)
    model = (predicate.get("serving") or {}).get("model_args") or ""
    default_name = next((a.split("=", 1)[1] for a in str(model).split(",")
                         if a.startswith("pretrained=")), results.stem)
    _emit_statement(fmt, signers, output, "eval-result", name or default_name, digest, predicate,
                    _import_text(predicate, results))


@evidence_import.command("model-index")
@click.argument("card", type=click.Path(path_type=Path), metavar="README.md")
@click.option("--model", default=None, help="Which model-index entry (when there are several).")
@_import_options
@_baseline_options("model-index")
@click.option("--baseline-model", default=None,
              help="Which model-index entry of the --baseline card (when it has several).")
@_sign_options
@FORMAT
@guarded
def import_model_index_cmd(card: Path, model: str | None, subject: str, name: str | None,
                           layers: tuple[str, ...], evaluated_at: str | None,
                           baseline: Path | None, baseline_subject: str | None,
                           imports_file: Path | None, baseline_model: str | None,
                           sign_keys: tuple[Path, ...], output: Path | None, fmt: str) -> None:
    """The model-index of a Hugging Face model card's YAML front matter.

    Each result's dataset is named TYPE[CONFIG]:SPLIT, so the validation and test splits of one
    dataset are separate metrics; stderr, n-shot and the metric's args are kept. A model-index
    carries no date: --evaluated-at (when the evaluation ran) is required. imports.yaml maps
    "DATASET/METRIC" (e.g. "hellaswag:validation/acc_norm") to LAYER.METRIC of gates.yaml."""
    from slmgate.runtime import import_model_index
    from slmgate.runtime._importers import load_metric_map

    digest = _subject(subject)
    base_digest = _baseline_digest(baseline, baseline_subject)
    if baseline_model is not None and baseline is None:
        raise InputError("--baseline-model needs --baseline", field="--baseline-model")
    signers = _check_sign(sign_keys, output)
    predicate = import_model_index(
        card, model=model, layers=layers, evaluated_at=evaluated_at, baseline=baseline,
        baseline_model=baseline_model, baseline_subject=base_digest,
        metric_map=load_metric_map(imports_file, "model-index") if imports_file else None)
    default_name = predicate["suite"]["name"].removeprefix("model-index:")
    _emit_statement(fmt, signers, output, "eval-result", name or default_name, digest, predicate,
                    _import_text(predicate, card))
