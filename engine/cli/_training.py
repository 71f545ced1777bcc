"""`slmgate evidence data-card|training-run`: signed training provenance for users' own
pipelines. Neither needs torch: datasets and weights are hashed as files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from slmgate.engine.cli._common import FORMAT, emit, guarded
from slmgate.engine.cli._evidence import evidence
from slmgate.engine.policy._provenance import (
    TRAINING_BUILD_TYPE,
    Dependency,
    data_card_predicate,
    hash_dataset,
    training_run_predicate,
)
from slmgate.evidence import SigningKey, format_time, make_statement, parse_time, sign_envelope, write_atomic
from slmgate.evidence.errors import InputError


def _time(value: str | None, field: str) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_time(value, what=field)
    except ValueError as exc:
        raise InputError(str(exc), field=field, advice="for example 2026-11-20T12:00:00Z") from exc


def _sign(keys: tuple[Path, ...], output: Path, kind: str, name: str, subject: str,
          predicate: dict[str, Any]) -> None:
    signers = [SigningKey.load(k) for k in keys]
    write_atomic(output, sign_envelope(make_statement(name, subject, kind, predicate), signers).to_json())
    click.echo(f"signed {kind} about {name} (sha256:{subject}) with {len(signers)} key(s) -> {output}",
               err=True)


def _named_dir(value: str, option: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise InputError(f"expected NAME=DIR, got {value!r}", field=option)
    return name, Path(folder)


@evidence.command("data-card")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--card", "card_path", type=click.Path(path_type=Path), required=True,
              help="The card document (YAML): name, provenance {category, origin {name, digest}}, "
                   "purpose, lawful_basis, records {oldest, newest, rows}, pii {scan, redaction}, "
                   "access_role.")
@click.option("--sign", "sign_keys", type=click.Path(path_type=Path), multiple=True, required=True,
              metavar="KEY", help="The data owner's private key (repeat for several signatures).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where the signed envelope goes.")
@click.option("--created-at", default=None, metavar="RFC3339", help="Default: now.")
@FORMAT
@guarded
def evidence_data_card(dataset_dir: Path, card_path: Path, sign_keys: tuple[Path, ...],
                       output: Path, created_at: str | None, fmt: str) -> None:
    """Hash DATASET_DIR (every file, sha256, like weights) and sign its data card.

    The statement's subject is the dataset's content digest; the predicate is the card document
    plus that digest. A promotion counts the card only when its verified training-run names this
    digest (or a counted derivative card names it as its source). Provenance categories:
    licensed_corpus, customer_provided, synthetic (origin: the teacher model), human_labels
    (origin: the labelling vendor), derivative (origin: the source dataset's name and digest,
    ``sha256:HEX``). Exit 2 naming the file and field when the card does not hold up; nothing is
    written then."""
    try:
        card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(card_path)) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"not YAML ({exc})", file=str(card_path)) from exc
    named = card.get("name") if isinstance(card, dict) else None
    manifest = hash_dataset(dataset_dir, str(named or dataset_dir.resolve().name))
    predicate = data_card_predicate(card, manifest, _time(created_at, "--created-at"),
                                    source=str(card_path))
    name = predicate["dataset"]["name"]
    _sign(sign_keys, output, "data-card", name, manifest.root_digest, predicate)
    emit(fmt, predicate, f"data card: {name} sha256:{manifest.root_digest} "
                         f"({len(manifest.resources)} file(s), {predicate['records']['rows']} rows)")


@evidence.command("training-run")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--model-name", required=True,
              help="The model's name: the subject name its signed weights manifest gives it.")
@click.option("--dataset", "datasets", multiple=True, required=True, metavar="NAME=DIR",
              help="A dataset the run trained on (its id in purposes.yaml and its folder); repeat.")
@click.option("--base-model", default=None, metavar="NAME=DIR",
              help="The base model the run started from (its weights folder).")
@click.option("--builder", required=True, help="The builder's id (SLSA builder.id), e.g. a CI URL.")
@click.option("--build-type", default=TRAINING_BUILD_TYPE, show_default=True)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="An invocation parameter (SLSA externalParameters); repeat. VALUE is YAML.")
@click.option("--invocation-id", default="", help="The CI run or job id.")
@click.option("--started-at", default=None, metavar="RFC3339", help="Default: --finished-at.")
@click.option("--finished-at", default=None, metavar="RFC3339", help="Default: now.")
@click.option("--sign", "sign_keys", type=click.Path(path_type=Path), multiple=True, required=True,
              metavar="KEY", help="The trainer service identity's private key.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where the signed envelope goes.")
@FORMAT
@guarded
def evidence_training_run(model_dir: Path, model_name: str, datasets: tuple[str, ...],
                          base_model: str | None, builder: str, build_type: str,
                          params: tuple[str, ...], invocation_id: str, started_at: str | None,
                          finished_at: str | None, sign_keys: tuple[Path, ...], output: Path,
                          fmt: str) -> None:
    """Sign a training-run attestation (SLSA provenance v1, flattened) about MODEL_DIR's weights.

    The subject is the weights root digest (what promotion requests name); the resolved
    dependencies are every --dataset by content digest (hashed like weights, so it equals the
    subject of that dataset's data card) and the --base-model by weights digest. The policy
    requires one for every change class that retrains."""
    deps = []
    for value in datasets:
        name, folder = _named_dir(value, "--dataset")
        deps.append(Dependency(name, hash_dataset(folder, name).root_digest, "training-data"))
    if base_model is not None:
        name, folder = _named_dir(base_model, "--base-model")
        deps.append(Dependency(name, hash_dataset(folder, name).root_digest, "base-model"))
    parameters: dict[str, Any] = {}
    for value in params:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise InputError(f"expected KEY=VALUE, got {value!r}", field="--param")
        parameters[key] = yaml.safe_load(raw) if raw else ""
    finished = _time(finished_at, "--finished-at")
    started = _time(started_at, "--started-at") if started_at else finished
    weights = hash_dataset(model_dir, model_name).root_digest
    predicate = training_run_predicate(deps, builder=builder, parameters=parameters,
                                       started_at=started, finished_at=finished,
                                       invocation_id=invocation_id, build_type=build_type)
    _sign(sign_keys, output, "training-run", model_name, weights, predicate)
    emit(fmt, predicate, "\n".join([f"training run: {model_name} sha256:{weights} "
                                    f"(finished {format_time(finished)})"]
                                   + [f"  {d.role} {d.name} sha256:{d.sha256}" for d in deps]))
