"""`slmgate demo`: the whole main path on the embedded defaults, with no server and no network.

Lays out a policy repository with fresh keys, trains a baseline and two candidates, produces
signed evidence about each, and runs five promotions through the gate: one approved, one denied
for a stress regression, one denied because an envelope was altered after signing, one held
for human sign-off, and one approved on its eval handed over as lm-evaluation-harness results
and imported through the policy repository's imports.yaml. Every decision is recorded in a git
ledger and rendered as a packet.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from slmgate.engine.deploy._verify import DeploymentRefused, verify_deployment
from slmgate.engine.ledger._attestation import PendingAttestation
from slmgate.engine.ledger._history import LedgerHistory
from slmgate.engine.ledger._store import Ledger
from slmgate.engine.ledger._verify import GateKeys
from slmgate.engine.packet._content import packet_attachments, packet_content
from slmgate.engine.packet._render import render_packet
from slmgate.engine.packet._seal import sealer
from slmgate.engine.policy._bundle import load_bundle
from slmgate.engine.policy._decision import Decision
from slmgate.engine.policy._engines import embedded_engine
from slmgate.engine.policy._evaluate import evaluate_promotion
from slmgate.engine.policy._provenance import (
    Dependency,
    data_card_predicate,
    hash_dataset,
    training_run_predicate,
)
from slmgate.engine.policy._scaffold import init_policy_repo
from slmgate.engine.promote import record_in_ledger, sign_decision_record
from slmgate.engine.request._request import approval_digest, load_request
from slmgate.evidence import (
    SigningKey,
    canonical_json,
    format_time,
    hash_model_dir,
    make_statement,
    sign_envelope,
    write_atomic,
)
from slmgate.evidence.errors import InputError

MARKER = ".slmgate-demo"
MODEL_NAME = "support-triage"


@dataclass(frozen=True)
class DemoPromotion:
    name: str
    story: str
    expected: str
    decision: Decision
    packet: Path
    commit: str


def _say(step: str) -> None:
    print(f"==> {step}", file=sys.stderr, flush=True)


def _sign(secrets: Path, signer: str, subject_name: str, subject_sha256: str, kind: str,
          predicate: dict[str, Any], dest: Path) -> Path:
    key = SigningKey.load(secrets / f"{signer}.key")
    envelope = sign_envelope(make_statement(subject_name, subject_sha256, kind, predicate), [key])
    write_atomic(dest, envelope.to_json())
    return dest


# What the data owner vouches for about the demo's datasets (the records are synthetic tickets
# standing in for scrubbed production tickets collected over the last four months).
_CARDS: dict[str, dict[str, Any]] = {
    "tickets_scrubbed": {
        "provenance": {"category": "customer_provided",
                       "origin": {"name": "support-desk tickets under the customer terms of service"}},
        "access_role": "ml-engineering",
    },
    "typo_augmented_tickets": {
        "provenance": {"category": "derivative", "origin": {"name": "tickets_scrubbed"},
                       "description": "each scrubbed ticket once more, with typos, casing and noise"},
        "access_role": "ml-engineering",
    },
}


@dataclass(frozen=True)
class TrainingProvenance:
    """A demo model's training run: its datasets (id -> folder) and signed data cards."""

    datasets: dict[str, Path]
    cards: dict[str, Path]
    oldest_record: str


def _sign_data_cards(datasets: dict[str, Path], secrets: Path, dest: Path,
                     now: datetime) -> TrainingProvenance:
    """Hash each dataset folder and sign its data card with the data owner's key; a derivative
    names its source by the source's content digest."""
    oldest, newest = (now - timedelta(days=120)).date(), (now - timedelta(days=2)).date()
    digests = {n: hash_dataset(folder, n) for n, folder in datasets.items()}
    cards: dict[str, Path] = {}
    for name, manifest in digests.items():
        card = {**_CARDS[name], "name": name, "purpose": "model_improvement",
                "lawful_basis": "legitimate_interests",
                "records": {"oldest": oldest.isoformat(), "newest": newest.isoformat(),
                            "rows": (datasets[name] / "train.jsonl").read_bytes().count(b"\n")},
                "pii": {"scan": "slmgate.runtime PII patterns (e-mail, phone, card, IBAN, GDPR)",
                        "redaction": "contact details and payment identifiers: typed placeholders"}}
        origin = card["provenance"]["origin"]
        if card["provenance"]["category"] == "derivative":
            card["provenance"] = {**card["provenance"], "origin": {
                **origin, "digest": {"sha256": digests[origin["name"]].root_digest}}}
        predicate = data_card_predicate(card, manifest, now, source=f"demo card {name}")
        cards[name] = _sign(secrets, "data-owner", name, manifest.root_digest, "data-card",
                            predicate, dest / f"data-card-{name}.dsse.json")
    return TrainingProvenance(datasets, cards, oldest.isoformat())


def _sign_training_run(model_dir: Path, config: Any, data: TrainingProvenance, secrets: Path,
                       root: str, dest: Path, now: datetime) -> Path:
    """The trainer's attestation: this model was trained with ``config`` on these datasets."""
    from dataclasses import asdict

    deps = [Dependency(n, hash_dataset(folder, n).root_digest, "training-data")
            for n, folder in data.datasets.items()]
    predicate = training_run_predicate(
        deps, builder="slmgate demo (slmgate.runtime.train_model, CPU)",
        parameters=asdict(config), started_at=now, finished_at=now,
        invocation_id=f"demo-{model_dir.name}",
        build_type="https://slmgate.dev/training/ticket-classifier/v1")
    return _sign(secrets, "trainer", MODEL_NAME, root, "training-run", predicate,
                 dest / "training-run.dsse.json")


def _evidence_for(model_dir: Path, baseline_dir: Path, baseline_sha: str, secrets: Path,
                  dest: Path, now: str, training: tuple[Any, TrainingProvenance]
                  ) -> tuple[str, dict[str, Path]]:
    """Sign a weights manifest, an eval result, a serving config and the training provenance
    (a training-run and the datasets' data cards) about ``model_dir``."""
    from slmgate.runtime import run_eval  # torch lives there

    manifest = hash_model_dir(model_dir, model_name=MODEL_NAME)
    root = manifest.root_digest
    files = {"weights-manifest": _sign(secrets, "runtime", MODEL_NAME, root, "weights-manifest",
                                       manifest.to_predicate(now), dest / "weights-manifest.dsse.json")}
    evaluation = run_eval(model_dir, baseline_dir)
    evaluation["baseline"] = {"name": MODEL_NAME, "digest": {"sha256": baseline_sha}}
    files["eval-result"] = _sign(secrets, "eval-harness", MODEL_NAME, root, "eval-result",
                                 evaluation, dest / "eval-result.dsse.json")
    files["serving-config"] = _capture(model_dir, secrets, root, dest, batch_size=8)
    config, data = training
    files["training-run"] = _sign_training_run(model_dir, config, data, secrets, root, dest,
                                               datetime.fromisoformat(now.replace("Z", "+00:00")))
    for name in data.datasets:
        card = dest / data.cards[name].name
        if card != data.cards[name]:
            shutil.copyfile(data.cards[name], card)
        files[f"data-card-{name}"] = card
    return root, files


def _capture(model_dir: Path, secrets: Path, root: str, dest: Path, *, batch_size: int) -> Path:
    """Measure the serving config on this CPU at ``batch_size`` and sign it."""
    from slmgate.runtime import capture_serving_config  # torch lives there

    serving = capture_serving_config(model_dir, device="cpu", dtype="float32",
                                     batch_size=batch_size)
    return _sign(secrets, "runtime", MODEL_NAME, root, "serving-config", serving,
                 dest / "serving-config.dsse.json")


def _lm_eval_results(evaluation: dict[str, Any], role: str, model_dir: Path) -> dict[str, Any]:
    """One model's side (``candidate`` or ``baseline``) of the demo's golden-set eval, written in
    lm-evaluation-harness's results-file format, as a team that runs lm-eval hands it over (the
    demo does not run lm-eval): a task per layer (``support_triage_<layer>``) with every sample
    evaluated, its sample digest, the run's date and duration, full precision."""
    suite = str(evaluation["suite"]["name"]).replace("-", "_")
    examples = {d["layer"]: d for d in evaluation["datasets"]}
    started = datetime.fromisoformat(evaluation["started_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(evaluation["finished_at"].replace("Z", "+00:00"))
    tasks = {f"{suite}_{layer}": layer for layer in evaluation["layers"]}
    return {
        "results": {task: {"alias": task, **{f"{metric},none": values[role] for metric, values
                                             in evaluation["layers"][layer]["metrics"].items()}}
                    for task, layer in tasks.items()},
        "group_subtasks": {task: [] for task in tasks},
        "configs": {task: {"task": task, "dataset_path": f"slmgate/{evaluation['suite']['name']}",
                           "dataset_name": layer} for task, layer in tasks.items()},
        "versions": {task: evaluation["suite"]["version"] for task in tasks},
        "n-shot": {task: 0 for task in tasks},
        "n-samples": {task: {"original": examples[layer]["examples"],
                             "effective": examples[layer]["examples"]}
                      for task, layer in tasks.items()},
        "task_hashes": {task: examples[layer]["digest"]["sha256"] for task, layer in tasks.items()},
        "config": {"model": "slmgate-demo", "model_args": f"pretrained={model_dir.name}",
                   "batch_size": None, "device": evaluation["serving"]["device"],
                   "model_dtype": evaluation["serving"]["dtype"], "limit": None},
        "date": started.timestamp(),
        "total_evaluation_time_seconds": str((finished - started).total_seconds()),
    }


def _imported_eval(work: Path, secrets: Path, model_dir: Path, baseline_sha: str, root: str,
                   dest: Path) -> Path:
    """The demo's eval as lm-eval results files (work/lm-eval/), imported through the policy
    repository's imports.yaml with the baseline's results, and signed by the eval harness."""
    from slmgate.runtime import import_lm_eval, run_eval  # torch lives there
    from slmgate.runtime._importers import load_metric_map

    evaluation = run_eval(model_dir, work / "models" / "baseline")
    files = {}
    for role, folder in (("candidate", model_dir), ("baseline", work / "models" / "baseline")):
        files[role] = work / "lm-eval" / f"{role}.json"
        files[role].parent.mkdir(parents=True, exist_ok=True)
        write_atomic(files[role], json.dumps(_lm_eval_results(evaluation, role, folder),
                                             indent=2).encode() + b"\n")
    predicate = import_lm_eval(files["candidate"], baseline=files["baseline"],
                               baseline_subject=baseline_sha, baseline_name=MODEL_NAME,
                               metric_map=load_metric_map(work / "policy-repo" / "imports.yaml"))
    return _sign(secrets, "eval-harness", MODEL_NAME, root, "eval-result", predicate,
                 dest / "eval-result.dsse.json")


def _deployed(envelope: Path) -> dict[str, Any]:
    """The serving configuration a request deploys: the one its serving-config measured."""
    import base64

    statement = json.loads(base64.b64decode(json.loads(envelope.read_bytes())["payload"]))
    p = statement["predicate"]
    return {"device": p["device"]["type"], "dtype": p["dtype"], "batch_size": p["batch_size"],
            "quantization": p.get("quantization", "none"),
            "runtime_version": p["software"]["torch_version"]}


def _request(dest: Path, *, rid: str, summary: str, version: str, root: str, baseline_sha: str,
             model_dir: Path, change_classes: list[str], evidence: dict[str, Path],
             changes: list[str], training: TrainingProvenance) -> dict[str, Any]:
    doc = {
        "apiVersion": "slmgate.dev/v1", "kind": "PromotionRequest", "id": rid,
        "summary": summary, "requested_by": "ml-engineering@example.com",
        "model": {"name": MODEL_NAME, "version": version, "weights_digest": f"sha256:{root}",
                  "path": str(Path("..") / ".." / "models" / model_dir.name)},
        "baseline": {"name": MODEL_NAME, "version": "1.0.0", "weights_digest": f"sha256:{baseline_sha}"},
        "change_classes": change_classes,
        "changes": changes,
        "deployment": {"purpose": "ticket_routing", "regions": ["eu"],
                       "subprocessors": ["eu-gpu-cloud"],
                       "serving": _deployed(evidence["serving-config"])},
        # Optional: when stated, it must match the signed provenance exactly.
        "training_data": [{"dataset": n, "oldest_record": training.oldest_record}
                          for n in training.datasets],
        "evidence": [{"ref": ref, "path": str(p.relative_to(dest))} for ref, p in evidence.items()],
    }
    write_atomic(dest / "request.json", json.dumps(doc, indent=2).encode() + b"\n")
    return doc


def _tamper(envelope_path: Path) -> None:
    """Raise the stress accuracy inside a signed eval envelope, leaving the signature alone."""
    import base64

    env = json.loads(envelope_path.read_bytes())
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = 0.99
    env["payload"] = base64.b64encode(canonical_json(statement)).decode()
    write_atomic(envelope_path, json.dumps(env, indent=2).encode() + b"\n")


def _prepare_out(out: Path) -> Path:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InputError("exists, is not empty and was not written by `slmgate demo`", file=str(out),
                         advice="choose another --out; the demo only replaces its own output")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    (work / MARKER).write_text("written by slmgate demo; safe to delete\n")
    return work


def _publish(work: Path, out: Path) -> None:
    """Swap the finished demo into place, so a failed run never leaves half an output."""
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.rename(trash / "old")
        work.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        work.rename(out)


def run_demo(out: Path, *, progress: Callable[[str], None] = _say) -> list[DemoPromotion]:
    work = _prepare_out(out)
    try:
        results = _run(work, out, progress)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _publish(work, out)
    return results


def _run(work: Path, out: Path, progress: Callable[[str], None]) -> list[DemoPromotion]:
    from slmgate.runtime import train_demo_models, write_training_datasets  # torch lives there
    from slmgate.runtime._demo_models import DEMO_CONFIGS

    now = datetime.now(UTC).replace(microsecond=0)
    stamp = format_time(now)
    policy_repo, secrets = work / "policy-repo", work / "secrets"
    progress(f"[1/6] policy repository from the default bundle, fresh keys -> {out / 'policy-repo'}")
    init_policy_repo(policy_repo, secrets)
    bundle = load_bundle(policy_repo)

    progress("[2/6] training baseline, candidate and regressed models (PyTorch, CPU)")
    models = train_demo_models(work / "models")
    baseline_sha = hash_model_dir(models["baseline"], model_name=MODEL_NAME).root_digest
    provenance = {}
    for name in ("candidate", "regressed"):
        folders = write_training_datasets(DEMO_CONFIGS[name], work / "datasets")
        provenance[name] = (DEMO_CONFIGS[name], _sign_data_cards(
            folders, secrets, work / "datasets" / f"cards-{name}", now))

    progress("[3/6] signed evidence: weights manifests, eval results (3 layers), serving configs, "
             "training runs and data cards")
    promos = work / "promotions"
    good = promos / "01-weekly-retrain"
    root, ev = _evidence_for(models["candidate"], models["baseline"], baseline_sha, secrets,
                             good / "evidence", stamp, provenance["candidate"])
    trained = provenance["candidate"][1]
    _request(good, rid="req-weekly-retrain-1.1.0", version="1.1.0", root=root,
             summary="Weekly retrain of the triage model on refreshed, scrubbed tickets",
             baseline_sha=baseline_sha, model_dir=models["candidate"],
             change_classes=["weights_retrain"], evidence=ev,
             changes=["Weights retrained with character n-grams and typo augmentation",
                      "Same architecture, same serving config"], training=trained)

    bad = promos / "02-regressed-candidate"
    bad_root, bad_ev = _evidence_for(models["regressed"], models["baseline"], baseline_sha, secrets,
                                     bad / "evidence", stamp, provenance["regressed"])
    _request(bad, rid="req-weekly-retrain-1.2.0", version="1.2.0", root=bad_root,
             summary="Retrain that dropped typo augmentation", baseline_sha=baseline_sha,
             model_dir=models["regressed"], change_classes=["weights_retrain"], evidence=bad_ev,
             changes=["Weights retrained on word features only, without augmentation"],
             training=provenance["regressed"][1])

    tampered = promos / "03-tampered-evidence"
    shutil.copytree(good / "evidence", tampered / "evidence")
    t_ev = {ref: tampered / "evidence" / p.name for ref, p in ev.items()}
    _tamper(t_ev["eval-result"])
    _request(tampered, rid="req-weekly-retrain-1.1.0-t", version="1.1.0", root=root,
             summary="The approved candidate's evidence, with the eval edited after signing",
             baseline_sha=baseline_sha, model_dir=models["candidate"],
             change_classes=["weights_retrain"], evidence=t_ev,
             changes=["Stress accuracy in the eval envelope raised by hand"], training=trained)

    family = promos / "04-serving-change"
    shutil.copytree(good / "evidence", family / "evidence")
    f_ev = {ref: family / "evidence" / p.name for ref, p in ev.items()}
    f_ev["serving-config"] = _capture(models["candidate"], secrets, root, family / "evidence",
                                      batch_size=16)
    plan = {"created_at": stamp, "owner": "release-manager", "mechanism": "feature flag, 5% canary",
            "max_rollback_minutes": 15, "last_drill": stamp[:10],
            "previous": {"version": "1.0.0", "weights_digest": f"sha256:{baseline_sha}"}}
    f_ev["rollback-plan"] = _sign(secrets, "release-manager", MODEL_NAME, root, "rollback-plan",
                                  plan, family / "evidence" / "rollback-plan.dsse.json")
    family_doc = _request(family, rid="req-serving-1.1.0-batch16", version="1.1.0", root=root,
                          summary="Serve the approved weights with batch size 16",
                          baseline_sha=baseline_sha, model_dir=models["candidate"],
                          change_classes=["weights_retrain", "serving_config"], evidence=f_ev,
                          changes=["Serving batch size 8 -> 16"], training=trained)
    family_evidence = {ref: path.read_bytes() for ref, path in f_ev.items()}
    approval = {"request_id": family_doc["id"],
                "request_digest": approval_digest(family_doc, family_evidence),
                "decision": "approve", "approved_at": stamp, "comment": "Latency budget checked"}
    f_ev["approval-ml-lead"] = _sign(secrets, "ml-lead", MODEL_NAME, root, "approval", approval,
                                     family / "evidence" / "approval-ml-lead.dsse.json")
    _request(family, rid="req-serving-1.1.0-batch16", version="1.1.0", root=root,
             summary="Serve the approved weights with batch size 16", baseline_sha=baseline_sha,
             model_dir=models["candidate"], change_classes=["weights_retrain", "serving_config"],
             evidence=f_ev, changes=["Serving batch size 8 -> 16"], training=trained)

    imported = promos / "05-imported-lm-eval"
    shutil.copytree(good / "evidence", imported / "evidence")
    i_ev = {ref: imported / "evidence" / p.name for ref, p in ev.items()}
    i_ev["eval-result"] = _imported_eval(work, secrets, models["candidate"], baseline_sha, root,
                                         imported / "evidence")
    _request(imported, rid="req-weekly-retrain-1.1.0-lm-eval", version="1.1.0", root=root,
             summary="The weekly retrain, its eval handed over as lm-evaluation-harness results",
             baseline_sha=baseline_sha, model_dir=models["candidate"],
             change_classes=["weights_retrain"], evidence=i_ev,
             changes=["Eval imported from lm-eval results files through imports.yaml"],
             training=trained)

    progress("[4/6] promotions through the gate (regopy, compiled once)")
    policy = embedded_engine(bundle)
    gate_key = SigningKey.load(secrets / "slmgate-gate.key")
    ledger = Ledger(work / "ledger", signing_key=gate_key)
    stories = [
        (good, "weekly retrain, all gates pass", "approve"),
        (bad, "candidate regresses on the stress layer", "deny"),
        (tampered, "eval envelope edited after signing", "deny"),
        (family, "serving-config change: one of two sign-offs present", "review"),
        (imported, "weekly retrain gated on an imported lm-eval result (imports.yaml)", "approve"),
    ]
    results = []
    packets = work / "packets"
    for i, (folder, story, expected) in enumerate(stories, 1):
        # The requests name the shared models/ folder: the workspace is their evidence root.
        request = load_request(folder / "request.json", evidence_root=work)
        result = evaluate_promotion(request, bundle, policy, now=now)
        record = sign_decision_record(result.decision, gate_key)
        entry = record_in_ledger(ledger, result.decision, record, request,
                                 [e.raw for e in request.evidence], bundle)
        if i == 1:
            progress("[5/6] decisions recorded in the git ledger; rendering PDF packets")
        pdf = packets / f"{folder.name}.pdf"
        render_packet(packet_content(result.decision, result.facts, bundle, result.verified),
                      packet_attachments(request, record, result.decision, bundle), pdf,
                      sealer(record, result.decision.id, gate_key, now))
        results.append(DemoPromotion(folder.name, story, expected, result.decision,
                                     out / "packets" / pdf.name, entry.commit))
    deployments = _deploy(work, out, ledger, gate_key, models, results[0].decision.id, now)
    progress("[6/6] weeks in service (ops-metrics signed and recorded) and the program report")
    operations = _operate(work, out, ledger, bundle, models, now)
    reports = _report(work, out, ledger, bundle, now)
    summary = {
        "generated_at": stamp, "policy_bundle": bundle.digest, "ledger": str(out / "ledger"),
        "promotions": [{"name": r.name, "story": r.story, "expected": r.expected,
                        "outcome": r.decision.outcome, "exit_code": r.decision.exit_code,
                        "summary": r.decision.summary(), "packet": str(r.packet),
                        "ledger_commit": r.commit} for r in results],
        "deployments": deployments,
        "operations": operations,
        "reports": reports,
    }
    write_atomic(work / "summary.json", json.dumps(summary, indent=2).encode() + b"\n")
    for r in results:
        if r.decision.outcome != r.expected:
            raise RuntimeError(f"demo promotion {r.name} gave {r.decision.outcome}, "
                               f"expected {r.expected}: {r.decision.summary()}")
    return results


def _deploy(work: Path, out: Path, ledger: Ledger, gate_key: SigningKey,
            models: dict[str, Path], approved: str, now: datetime) -> list[dict[str, Any]]:
    """After the promotion: the approved candidate copied to its serving region and verified
    there (a gate-signed deployment attestation in the ledger); a second region still serving
    other weights is caught as drifted (digest differs, nothing recorded)."""
    gates = GateKeys.from_trust_file(work / "policy-repo" / "trust.yaml")
    served = {"eu-west": models["candidate"], "eu-central": models["regressed"]}
    found = []
    for region, weights in served.items():
        target = work / "deployments" / region / "weights"
        shutil.copytree(weights, target)
        with LedgerHistory(ledger.path) as history:
            try:
                check = verify_deployment(target, region, history, approved, gates, now,
                                          host=f"inference-{region}")
            except DeploymentRefused as exc:
                found.append({"region": region, "verified": False, "check": exc.check,
                              "message": exc.reason.replace(str(work), str(out))})
                continue
        entry = ledger.record_pending(PendingAttestation(
            "deployment-attestation", check.attestation(gate_key),
            f"deploy: {check.model_name} verified in {region}"))
        found.append({"region": region, "verified": True, "weights_digest": check.weights_digest,
                      "decision": check.decision_id, "attestation": entry.decision_id,
                      "path": str(out / "deployments" / region / "weights")})
    return found


# The demo's weekly ticket stream: a sample of the week's traffic, some of it typed in a hurry.
OPS_WEEKS = 6
OPS_TICKETS_PER_WEEK = 120
OPS_TYPO_SHARE = 0.4


def _week_stream(week: str, size: int) -> list[Any]:
    """The tickets of one week (seeded by the week, so a week names its stream)."""
    import random

    from slmgate.runtime._tickets import perturb, traffic_ticket

    rng = random.Random(f"ops:{week}")
    stream = []
    for _ in range(size):
        ticket = traffic_ticket(rng)
        if rng.random() < OPS_TYPO_SHARE:
            ticket = type(ticket)(perturb(ticket.text, rng), ticket.label, ticket.kind)
        stream.append(ticket)
    return stream


def _serve_week(model: Any, tickets: list[Any], charter: dict[str, Any]) -> dict[str, Any]:
    """Serve each ticket on this machine, one request at a time, and count what happened: a
    ticket routed to its right queue is automated (no human edit), one sent to human review is
    escalated, one routed to a wrong queue is a defect (an agent re-routes it)."""
    import time

    from slmgate.runtime import predict
    from slmgate.runtime._labels import ESCALATION

    latencies, automated, escalated, defects = [], 0, 0, 0
    for ticket in tickets:
        started = time.perf_counter()
        label = predict(model, [ticket.text], batch_size=1)[0]
        latencies.append((time.perf_counter() - started) * 1000)
        if label == ESCALATION:
            escalated += 1
        elif label == ticket.label:
            automated += 1
        else:
            defects += 1
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    # Minutes to the first queue assignment: the model's latency when it routed the ticket, the
    # charter's baseline handle time (people routing) for every other ticket.
    human = next(float(m["baseline"]) for m in charter["business_metrics"] if m["id"] == "handle_time")
    handle = (automated * statistics.median(latencies) / 60000 + (len(tickets) - automated) * human)
    return {"tasks": len(tickets), "automated": automated, "escalated": escalated,
            "defects": defects, "errors": 0, "successful": automated,
            "latency_p95_ms": f"{p95:.3f}", "bm.handle_time": f"{handle / len(tickets):.4f}"}


def _operate(work: Path, out: Path, ledger: Ledger, bundle: Any, models: dict[str, Path],
             now: datetime) -> list[dict[str, Any]]:
    """Weeks in service: the baseline served the weeks before the promotion, the approved
    candidate serves from the promotion's week on (to date). Each week's ticket stream is served
    here, the counts written as a monitoring export (``ops/metrics.csv``), imported under the
    charter's cost model, signed by the monitoring service and recorded in the ledger."""
    import csv
    import io

    from slmgate.engine.ops._metrics import OpsCharter, import_weeks, iso_week, week_of
    from slmgate.engine.ops._record import verified_attestation
    from slmgate.runtime import load_model

    charter = bundle.data["charter"]
    ops_charter = OpsCharter.from_charter(charter, source="charter.yaml")
    per_week = ops_charter.cost_model.device_hours_per_week or 168.0
    served = {"baseline": load_model(models["baseline"]), "candidate": load_model(models["candidate"])}
    digests = {n: hash_model_dir(models[n], model_name=MODEL_NAME).root_digest for n in served}
    this_week = week_of(now.date())
    rows = []
    for back in range(OPS_WEEKS - 1, -1, -1):
        week = week_of(now.date() - timedelta(weeks=back))
        start = datetime.combine(iso_week(week)[0], datetime.min.time(), tzinfo=UTC)
        # The promotion's week is reported to date: its hours and its share of the week's traffic.
        share = 1.0 if week != this_week else max(1 / 168, min(1.0, (now - start) / timedelta(days=7)))
        name = "candidate" if week == this_week else "baseline"
        counts = _serve_week(served[name], _week_stream(week, max(24, round(OPS_TICKETS_PER_WEEK * share))),
                             charter)
        rows.append({"week": week, "model": MODEL_NAME, "model_digest": f"sha256:{digests[name]}",
                     "region": "", "device_hours": f"{per_week * share:.4f}", **counts})
    folder = work / "ops"
    folder.mkdir()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(folder / "metrics.csv", text.getvalue().encode())
    key = SigningKey.load(work / "secrets" / "monitoring.key")
    trust = bundle.trust
    recorded = []
    for w in import_weeks(folder / "metrics.csv", ops_charter, now):
        envelope = folder / f"ops-metrics-{w.week}.dsse.json"
        write_atomic(envelope, sign_envelope(make_statement(w.model, w.digest_hex, "ops-metrics",
                                                            w.predicate), [key]).to_json())
        _, pending = verified_attestation(envelope, trust, now)
        entry = ledger.record_pending(pending)
        p = w.predicate
        recorded.append({"week": w.week, "weights_digest": p["model"]["weights_digest"],
                         "tasks": p["tasks"], "automated_share": p["automated_share"],
                         "escalation_share": p["escalation_share"],
                         "defects_per_1000": p["defects_per_1000"],
                         "cost_per_successful_task": p["cost"]["per_successful_task"],
                         "latency_p95_ms": p["latency_p95_ms"], "attestation": entry.decision_id,
                         "envelope": str(out / "ops" / envelope.name)})
    return recorded


def _report(work: Path, out: Path, ledger: Ledger, bundle: Any, now: datetime) -> dict[str, str]:
    """The program report of the demo's own ledger, as PDF and as HTML."""
    from slmgate.engine.report._program import program_report
    from slmgate.engine.report._render import write_report

    gates = GateKeys.from_trust_file(work / "policy-repo" / "trust.yaml")
    with LedgerHistory(ledger.path) as history:
        report = program_report(history, bundle, gates, now)
    written = {}
    for fmt in ("pdf", "html"):
        write_report(report, fmt, work / "reports" / f"program-report.{fmt}")
        written[fmt] = str(out / "reports" / f"program-report.{fmt}")
    return written
