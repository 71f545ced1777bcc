"""Producing training provenance: a data card from a dataset folder and its card document, and a
training-run statement from the datasets and base model a training resolved.

A dataset's content digest is the root digest of a manifest of its files, hashed exactly like
weights (``hash_model_dir``): a promotion names weights and datasets the same way. The demo and
``slmgate evidence data-card`` / ``training-run`` build their predicates here; each predicate is
checked against its JSON Schema before anything is signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from slmgate.evidence import WeightsManifest, check_predicate, format_time, hash_model_dir
from slmgate.evidence.errors import InputError, PredicateSchemaError

TRAINING_BUILD_TYPE = "https://slmgate.dev/training/v0.1"

# The fields a card document (card.yaml) may hold; slmgate adds the dataset's digest, its file
# count and created_at.
CARD_FIELDS = ("name", "provenance", "purpose", "lawful_basis", "records", "pii", "access_role")


@dataclass(frozen=True)
class Dependency:
    """A resolved dependency of a training run: a dataset or the base model, by content digest."""

    name: str
    sha256: str
    role: str  # "training-data" | "base-model"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256}, "role": self.role}


def hash_dataset(folder: Path, name: str) -> WeightsManifest:
    """The content manifest of a dataset folder (every file, sha256, hashed like weights)."""
    if not folder.is_dir():
        raise InputError("is not a directory", file=str(folder),
                         advice="a dataset is a folder of record files")
    return hash_model_dir(folder, model_name=name)


def _plain(value: Any) -> Any:
    """YAML dates become ``YYYY-MM-DD``; everything else as it is."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _origin_digest(origin: Any) -> Any:
    """``origin.digest`` may be written ``sha256:HEX``; the predicate holds a DigestSet."""
    if isinstance(origin, dict) and isinstance(origin.get("digest"), str):
        return {**origin, "digest": {"sha256": origin["digest"].lower().removeprefix("sha256:")}}
    return origin


def data_card_predicate(card: Mapping[str, Any], manifest: WeightsManifest, created_at: datetime,
                        *, source: str) -> dict[str, Any]:
    """The data-card predicate for the dataset ``manifest`` hashed, described by ``card`` (a
    card document); ``InputError`` naming ``source`` and the field when it does not hold up."""
    if not isinstance(card, Mapping):
        raise InputError("a card document is a mapping", file=source)
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; a card holds {list(CARD_FIELDS)}",
                         file=source, field=unknown[0])
    doc = _plain(dict(card))
    name = doc.pop("name", None) or manifest.model_name
    if isinstance(doc.get("provenance"), dict):
        doc["provenance"] = {**doc["provenance"],
                             "origin": _origin_digest(doc["provenance"].get("origin"))}
    predicate = {
        "dataset": {"name": name, "digest": {"sha256": manifest.root_digest},
                    "files": len(manifest.resources)},
        **doc,
        "created_at": format_time(created_at),
    }
    try:
        check_predicate("data-card", predicate)
    except PredicateSchemaError as exc:
        raise InputError(exc.message, file=source, field=exc.field, advice=exc.advice) from exc
    records = predicate["records"]
    if records["newest"] < records["oldest"]:
        raise InputError(f"newest record {records['newest']} is older than the oldest "
                         f"{records['oldest']}", file=source, field="records.newest")
    return predicate


def training_run_predicate(
    dependencies: Sequence[Dependency], *, builder: str, parameters: Mapping[str, Any],
    started_at: datetime, finished_at: datetime, invocation_id: str = "",
    build_type: str = TRAINING_BUILD_TYPE,
) -> dict[str, Any]:
    """A training-run predicate (SLSA provenance v1, flattened): the builder, the invocation's
    parameters and every dataset and base model by digest."""
    if not any(d.role == "training-data" for d in dependencies):
        raise InputError("a training run resolves at least one dataset", field="--dataset")
    if finished_at < started_at:
        raise InputError("finished before it started", field="--finished-at")
    predicate: dict[str, Any] = {
        "build_type": build_type, "builder": {"id": builder},
        "external_parameters": dict(parameters),
        "resolved_dependencies": [d.to_json() for d in dependencies],
        "started_at": format_time(started_at), "finished_at": format_time(finished_at),
    }
    if invocation_id:
        predicate["invocation_id"] = invocation_id
    try:
        check_predicate("training-run", predicate)
    except PredicateSchemaError as exc:
        raise InputError(exc.message, field=exc.field, advice=exc.advice) from exc
    return predicate
