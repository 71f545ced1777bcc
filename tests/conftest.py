"""Shared fixtures: a policy repository with fresh keys, model folders, and a builder for
signed evidence and promotion requests — all made in tmp_path, no torch needed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slmgate.engine import approval_digest
from slmgate.engine.policy._scaffold import init_policy_repo
from slmgate.evidence import (
    SigningKey,
    format_time,
    hash_model_dir,
    make_statement,
    sign_envelope,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def recent() -> datetime:
    """A minute ago: evidence for a decision the CLI records, which is always made at the real
    time (``--at`` is refused with ``--ledger``, ``--packet`` and ``--signing-key``)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
MODEL = "support-triage"


def write_model(folder: Path, seed: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(seed * 4096)
    (folder / "config.json").write_text(json.dumps({"seed": seed.hex()}))
    return folder


def eval_predicate(baseline_sha: str, when: datetime = NOW, **overrides: float) -> dict[str, Any]:
    metrics = {
        ("regression", "accuracy"): (0.95, 0.93), ("regression", "macro_f1"): (0.94, 0.92),
        ("stress", "accuracy"): (0.90, 0.85), ("policy", "pii_escalation_recall"): (1.0, 1.0),
        ("policy", "false_escalation_rate"): (0.02, 0.03),
    }
    layers: dict[str, Any] = {}
    for (layer, name), (cand, base) in metrics.items():
        cand = overrides.get(f"{layer}_{name}", cand)
        layers.setdefault(layer, {"metrics": {}})["metrics"][name] = {"candidate": cand, "baseline": base}
    return {
        "suite": {"name": "support-triage", "version": "1"},
        "harness": {"name": "tests", "version": "0"},
        "datasets": [], "layers": layers,
        "baseline": {"name": MODEL, "digest": {"sha256": baseline_sha}},
        "serving": {"device": "cpu", "dtype": "float32"},
        "started_at": format_time(when), "finished_at": format_time(when),
    }


def serving_predicate(when: datetime = NOW, p95: float = 1.5) -> dict[str, Any]:
    return {
        "device": {"type": "cpu", "name": "test cpu", "compute_capability": None, "memory_bytes": None},
        "software": {"torch_version": "2.13.0+cpu"}, "dtype": "float32", "quantization": "none",
        "batch_size": 8, "sequence_length": 64, "warmup_iterations": 1, "timed_iterations": 3,
        "latency_ms": {"p50": p95 / 2, "p95": p95}, "throughput_per_s": 1000.0,
        "peak_memory_bytes": None, "tensor_digest": {"sha256": "00" * 32},
        "captured_at": format_time(when),
    }


def write_dataset(folder: Path, seed: bytes, rows: int = 50) -> Path:
    """A dataset folder: one JSON-lines file of ``rows`` records derived from ``seed``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": f"ticket {seed.hex()} {i}", "label": "billing"})
             for i in range(rows)]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def data_card_predicate(name: str, sha256: str, when: datetime = NOW, **fields: Any) -> dict[str, Any]:
    """A data card for ``name`` (content digest ``sha256``): scrubbed customer tickets for
    model improvement, oldest record 2026-06-01. ``fields`` replace top-level fields;
    ``oldest``/``newest`` the record dates; ``source=(name, sha256)`` makes it a derivative."""
    source = fields.pop("source", None)
    provenance: dict[str, Any] = {"category": "customer_provided",
                                  "origin": {"name": "support-desk tickets (MSA 2024-07)"}}
    if source is not None:
        provenance = {"category": "derivative",
                      "origin": {"name": source[0], "digest": {"sha256": source[1]}}}
    doc: dict[str, Any] = {
        "dataset": {"name": name, "digest": {"sha256": sha256}, "files": 1},
        "provenance": provenance, "purpose": "model_improvement",
        "lawful_basis": "legitimate_interests",
        "records": {"oldest": fields.pop("oldest", "2026-06-01"),
                    "newest": fields.pop("newest", "2026-11-01"), "rows": 50},
        "pii": {"scan": "presidio 2.2 (e-mail, phone, card, IBAN)",
                "redaction": "replaced with typed placeholders"},
        "access_role": "ml-engineering", "created_at": format_time(when),
    }
    doc.update(fields)
    return doc


def training_run_predicate(datasets: list[tuple[str, str]], when: datetime = NOW,
                           base: tuple[str, str] | None = None) -> dict[str, Any]:
    deps: list[dict[str, Any]] = [{"name": n, "digest": {"sha256": d}, "role": "training-data"}
                                  for n, d in datasets]
    if base is not None:
        deps.append({"name": base[0], "digest": {"sha256": base[1]}, "role": "base-model"})
    return {
        "build_type": "https://slmgate.dev/training/ticket-classifier/v1",
        "builder": {"id": "https://ci.example.com/trainer"}, "invocation_id": "run-1",
        "external_parameters": {"epochs": 6}, "resolved_dependencies": deps,
        "started_at": format_time(when), "finished_at": format_time(when),
    }


# What the test requests deploy: exactly what ``serving_predicate`` measured.
SERVING = {"device": "cpu", "dtype": "float32", "batch_size": 8, "quantization": "none",
           "runtime_version": "2.13.0+cpu"}


@dataclass
class World:
    root: Path
    policies: Path
    secrets: Path
    candidate: Path
    baseline: Path
    other: Path
    datasets: Path

    def key(self, name: str) -> SigningKey:
        return SigningKey.load(self.secrets / f"{name}.key")

    @property
    def candidate_sha(self) -> str:
        return hash_model_dir(self.candidate, model_name=MODEL).root_digest

    @property
    def baseline_sha(self) -> str:
        return hash_model_dir(self.baseline, model_name=MODEL).root_digest

    def envelope(self, signer: str | list[str], kind: str, predicate: dict[str, Any],
                 subject: str | None = None) -> bytes:
        signers = [signer] if isinstance(signer, str) else signer
        statement = make_statement(MODEL, subject or self.candidate_sha, kind, predicate)
        return sign_envelope(statement, [self.key(s) for s in signers]).to_json()

    def dataset_sha(self, name: str) -> str:
        """The content digest of the world's dataset ``name`` (written on first use)."""
        folder = self.datasets / name
        if not folder.exists():
            write_dataset(folder, name.encode())
        return hash_model_dir(folder, model_name=name).root_digest

    def data_card(self, name: str, when: datetime = NOW, *, signer: str = "data-owner",
                  sha256: str | None = None, **fields: Any) -> bytes:
        """A signed data card about the world's dataset ``name`` (subject: its content digest)."""
        digest = sha256 or self.dataset_sha(name)
        statement = make_statement(name, digest, "data-card",
                                   data_card_predicate(name, digest, when, **fields))
        return sign_envelope(statement, [self.key(signer)]).to_json()

    def training_run(self, datasets: list[str], when: datetime = NOW, *, signer: str = "trainer",
                     digests: dict[str, str] | None = None) -> bytes:
        """A signed training-run about the candidate naming the world's ``datasets``."""
        named = [(n, (digests or {}).get(n) or self.dataset_sha(n)) for n in datasets]
        base = ("support-triage-base", self.baseline_sha)
        return self.envelope(signer, "training-run", training_run_predicate(named, when, base=base))

    def training_evidence(self, when: datetime = NOW,
                          datasets: tuple[str, ...] = ("tickets_scrubbed",)) -> dict[str, bytes]:
        """A training-run over ``datasets`` and one data card per dataset."""
        out = {"training-run": self.training_run(list(datasets), when)}
        out.update({f"data-card-{n}": self.data_card(n, when) for n in datasets})
        return out

    def standard_evidence(self, when: datetime = NOW, **eval_overrides: float) -> dict[str, bytes]:
        """Weights manifest, eval result, serving config; and the signed training provenance
        (a training-run and the card of ``tickets_scrubbed``) a retrain needs."""
        manifest = hash_model_dir(self.candidate, model_name=MODEL)
        return {
            "weights-manifest": self.envelope("runtime", "weights-manifest",
                                              manifest.to_predicate(format_time(when))),
            "eval-result": self.envelope("eval-harness", "eval-result",
                                         eval_predicate(self.baseline_sha, when, **eval_overrides)),
            "serving-config": self.envelope("runtime", "serving-config", serving_predicate(when)),
            **self.training_evidence(when),
        }

    def request(self, folder: Path, evidence: dict[str, bytes], *, change_classes: list[str] | None = None,
                rid: str = "req-test-1", with_path: bool = True, **model: Any) -> Path:
        import shutil

        folder.mkdir(parents=True, exist_ok=True)
        if with_path:  # the weights sit beside the request: paths are confined to its folder
            source = Path(model.pop("path", self.candidate))
            shutil.rmtree(folder / "weights", ignore_errors=True)
            shutil.copytree(source, folder / "weights")
        items = []
        for ref, raw in evidence.items():
            (folder / f"{ref}.dsse.json").write_bytes(raw)
            items.append({"ref": ref, "path": f"{ref}.dsse.json"})
        doc = self.request_doc(rid, change_classes or ["weights_retrain"], items, with_path, **model)
        path = folder / "request.json"
        path.write_text(json.dumps(doc, indent=2))
        return path

    def request_doc(self, rid: str, change_classes: list[str], items: list[dict[str, str]],
                    with_path: bool = True, **model: Any) -> dict[str, Any]:
        m = {"name": MODEL, "version": "1.1.0", "weights_digest": f"sha256:{self.candidate_sha}"}
        if with_path:
            m["path"] = "weights"  # a copy of the candidate beside the request (see ``request``)
        m.update(model)
        return {
            "apiVersion": "slmgate.dev/v1", "kind": "PromotionRequest", "id": rid,
            "summary": "test promotion", "requested_by": "tests@example.com", "model": m,
            "baseline": {"name": MODEL, "version": "1.0.0", "weights_digest": f"sha256:{self.baseline_sha}"},
            "change_classes": change_classes,
            "deployment": {"purpose": "ticket_routing", "regions": ["eu"], "subprocessors": ["eu-gpu-cloud"],
                           "serving": SERVING},
            "training_data": [{"dataset": "tickets_scrubbed", "oldest_record": "2026-06-01"}],
            "evidence": items,
        }

    def rollback_plan(self, when: datetime = NOW, drill_days_ago: int = 20) -> bytes:
        drill = (when - timedelta(days=drill_days_ago)).date().isoformat()
        return self.envelope("release-manager", "rollback-plan", {
            "created_at": format_time(when), "owner": "release-manager",
            "mechanism": "feature flag, 5% canary", "max_rollback_minutes": 10, "last_drill": drill})

    def review_request(self, folder: Path) -> Path:
        """A request that goes to REVIEW: a serving change (with its rollback plan) signed off
        by the ml-lead only; the release-manager's approval is missing."""
        classes = ["weights_retrain", "serving_config"]
        evidence = self.standard_evidence()
        evidence["rollback-plan"] = self.envelope("release-manager", "rollback-plan", {
            "created_at": format_time(NOW), "owner": "release-manager", "mechanism": "feature flag",
            "max_rollback_minutes": 10, "last_drill": NOW.date().isoformat(),
            "previous": {"version": "1.0.0", "weights_digest": f"sha256:{self.baseline_sha}"}})
        items = [{"ref": ref, "path": f"{ref}.dsse.json"} for ref in [*evidence, "approval-ml-lead"]]
        doc = self.request_doc("req-review", classes, items)
        evidence["approval-ml-lead"] = self.approval("ml-lead", doc, evidence)
        return self.request(folder, evidence, rid="req-review", change_classes=classes)

    def policies_with_rego(self, dest: Path, source: str) -> Path:
        """A copy of the policy repository whose promotion.rego is ``source`` (its unit tests
        removed, since they test the real module)."""
        import shutil

        shutil.copytree(self.policies, dest)
        (dest / "rego" / "promotion.rego").write_text(source)
        (dest / "rego" / "promotion_test.rego").unlink()
        return dest

    def approval(self, signer: str, doc: dict[str, Any], evidence: dict[str, bytes] | None = None,
                 when: datetime = NOW) -> bytes:
        """An approval of ``doc`` whose evidence is ``evidence`` (ref -> envelope bytes)."""
        return self.envelope(signer, "approval", {
            "request_id": doc["id"], "request_digest": approval_digest(doc, evidence),
            "decision": "approve",
            "approved_at": format_time(when), "comment": "ok"})


@pytest.fixture(scope="session", autouse=True)
def _bundle_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cache of validated bundles (``engine.policy._bundle_cache``) in a folder of the test
    session, for every test and every process a test starts: never the user's own."""
    folder = tmp_path_factory.mktemp("bundle-cache")
    before = os.environ.get("SLMGATE_CACHE_DIR")
    os.environ["SLMGATE_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("SLMGATE_CACHE_DIR", None)
    else:
        os.environ["SLMGATE_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def session_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("world"))


def make_world(root: Path) -> World:
    """A policy repository with fresh keys and three small models under ``root`` (the tests'
    session world; the benchmarks build theirs the same way)."""
    init_policy_repo(root / "policies", root / "secrets")
    return World(root, root / "policies", root / "secrets",
                 write_model(root / "models" / "candidate", b"\x01\x02"),
                 write_model(root / "models" / "baseline", b"\x03\x04"),
                 write_model(root / "models" / "other", b"\x05\x06"), root / "datasets")


@pytest.fixture
def world(session_world: World) -> World:
    return session_world


NowFn = Callable[[], datetime]
__all__ = ["MODEL", "NOW", "SERVING", "World", "data_card_predicate", "eval_predicate", "recent",
           "serving_predicate", "timedelta", "training_run_predicate", "write_dataset"]
