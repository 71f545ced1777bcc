"""What-if over a synthetic ledger: every recorded decision re-evaluated under a tightened bundle
(`slmgate ledger what-if`), against re-running `slmgate promote` one decision at a time.

    .venv/bin/python bench/bench_whatif.py [--decisions 10000] [--per-candidate 5] [--jobs 1 2]
                                           [--promote-runs 20] [--out DIR]

The ledger is built fast and honestly signed: each decision is a real ``evaluate_promotion`` of
a real signed request, with the policy output memoised per decision shape (the facts without
the request id, the candidate's version and digest, the evaluation time and the evidence ages);
a sample is then replayed for real to show the records are what the policy gives. The commits
go in through one ``git fast-import`` run, with the files and chain entries the ledger writer
itself computes (``PendingDecision.files``), and ``ledger verify`` checks the result.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slmgate.engine import CompiledPolicy, load_bundle  # noqa: E402
from slmgate.engine.ledger._history import LedgerHistory  # noqa: E402
from slmgate.engine.ledger._replay import BundleCache, replay  # noqa: E402
from slmgate.engine.ledger._store import Ledger, PendingDecision, bundle_files  # noqa: E402
from slmgate.engine.ledger._verify import GateKeys, verify_ledger  # noqa: E402
from slmgate.engine.ledger._verify_cache import CachedVerifier  # noqa: E402
from slmgate.engine.ledger._whatif import evaluate_entries, what_if  # noqa: E402
from slmgate.engine.policy._evaluate import evaluate_promotion  # noqa: E402
from slmgate.engine.policy._scaffold import init_policy_repo  # noqa: E402
from slmgate.engine.promote import sign_decision_record  # noqa: E402
from slmgate.engine.request._request import request_from_parts  # noqa: E402
from slmgate.evidence import (  # noqa: E402
    SigningKey,
    canonical_json,
    format_time,
    hash_model_dir,
    make_statement,
    sign_envelope,
)

MODEL = "support-triage"
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class MemoPolicy:
    """The compiled policy, queried once per decision shape (see the module docstring)."""

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy, self.memo, self.queries = policy, {}, 0  # type: dict[bytes, dict[str, Any]]

    def evaluate(self, facts: dict[str, Any]) -> dict[str, Any]:
        shape = json.loads(json.dumps(facts))
        shape.pop("evaluated_at", None)
        for name in ("id", "model"):
            shape["request"].pop(name, None)
        shape["evidence"]["ages_days"] = sorted(shape["evidence"]["ages_days"])
        key = canonical_json(shape)
        if key not in self.memo:
            self.queries += 1
            self.memo[key] = self.policy.evaluate(facts)
        return json.loads(json.dumps(self.memo[key]))


def _sign(key: SigningKey, subject: str, kind: str, predicate: dict[str, Any]) -> bytes:
    return sign_envelope(make_statement(MODEL, subject, kind, predicate), [key]).to_json()


def _candidate_evidence(work: Path, keys: dict[str, SigningKey], i: int, baseline: str,
                        when: datetime, rng: random.Random) -> tuple[str, dict[str, bytes]]:
    model = work / "models" / f"c{i:05d}"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(i.to_bytes(4, "big") * 256)
    (model / "config.json").write_text(json.dumps({"candidate": i}))
    manifest = hash_model_dir(model, model_name=MODEL)
    root, stamp = manifest.root_digest, format_time(when)
    draw = rng.random()  # most improve; some drop a little (1.5 points); a few regress (5 points)
    stress = 0.86 if draw < 0.7 else (0.835 if draw < 0.9 else 0.80)
    metrics = {("regression", "accuracy"): (0.95, 0.93), ("regression", "macro_f1"): (0.94, 0.92),
               ("stress", "accuracy"): (stress, 0.85), ("policy", "pii_escalation_recall"): (1.0, 1.0),
               ("policy", "false_escalation_rate"): (0.02, 0.03)}
    layers: dict[str, Any] = {}
    for (layer, name), (cand, base) in metrics.items():
        layers.setdefault(layer, {"metrics": {}})["metrics"][name] = {"candidate": cand, "baseline": base}
    evaluation = {"suite": {"name": MODEL, "version": "1"}, "harness": {"name": "bench", "version": "0"},
                  "datasets": [], "layers": layers,
                  "baseline": {"name": MODEL, "digest": {"sha256": baseline}},
                  "serving": {"device": "cpu", "dtype": "float32"}, "started_at": stamp, "finished_at": stamp}
    serving = {"device": {"type": "cpu", "name": "bench cpu", "compute_capability": None,
                          "memory_bytes": None},
               "software": {"torch_version": "2.13.0+cpu"}, "dtype": "float32", "quantization": "none",
               "batch_size": 8, "sequence_length": 64, "warmup_iterations": 1, "timed_iterations": 3,
               "latency_ms": {"p50": 1.0, "p95": 2.0}, "throughput_per_s": 1000.0,
               "peak_memory_bytes": None, "tensor_digest": {"sha256": "00" * 32}, "captured_at": stamp}
    return root, {
        "weights-manifest": _sign(keys["runtime"], root, "weights-manifest", manifest.to_predicate(stamp)),
        "eval-result": _sign(keys["eval-harness"], root, "eval-result", evaluation),
        "serving-config": _sign(keys["runtime"], root, "serving-config", serving),
    }


def _request(rid: str, root: str, baseline: str, version: str, evidence: dict[str, bytes]) -> bytes:
    doc = {"apiVersion": "slmgate.dev/v1", "kind": "PromotionRequest", "id": rid,
           "summary": "weekly retrain", "requested_by": "ml-engineering@example.com",
           "model": {"name": MODEL, "version": version, "weights_digest": f"sha256:{root}"},
           "baseline": {"name": MODEL, "version": "1.0.0", "weights_digest": f"sha256:{baseline}"},
           "change_classes": ["weights_retrain"],
           "deployment": {"purpose": "ticket_routing", "regions": ["eu"], "subprocessors": ["eu-gpu-cloud"]},
           "training_data": [{"dataset": "tickets_scrubbed", "oldest_record": "2026-06-01"}],
           "evidence": [{"ref": ref, "path": f"{ref}.dsse.json"} for ref in evidence]}
    return json.dumps(doc, indent=2).encode() + b"\n"


def _fast_import_stream(pending: list[tuple[PendingDecision, datetime]], key: SigningKey,
                        parent: str) -> bytes:
    out, stored, prev = [], set(), None
    for seq, (p, when) in enumerate(pending, 1):
        files, entry = p.files(seq, prev, key, stored, now=when)
        stored |= set(files) | {k.split("/")[0] + "/" + k.split("/")[1] + "/" for k in files
                                if k.startswith("bundles/")}
        prev = files[entry]
        message = p.message_for(seq, files[entry]).encode()
        stamp = int(when.timestamp())
        out.append(b"commit refs/heads/main\n")
        out.append(b"mark :%d\ncommitter slmgate <slmgate@localhost> %d +0000\n" % (seq, stamp))
        out.append(b"data %d\n%s\n" % (len(message), message))
        if seq == 1:
            out.append(b"from %s\n" % parent.encode())
        for rel, data in sorted(files.items()):
            out.append(b"M 100644 inline %s\ndata %d\n%s\n" % (rel.encode(), len(data), data))
    return b"".join(out)


def build_ledger(work: Path, decisions: int, per_candidate: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    secrets = work / "secrets"
    init_policy_repo(work / "policies", secrets)
    bundle = load_bundle(work / "policies")
    policy = MemoPolicy(CompiledPolicy(bundle))
    keys = {n: SigningKey.load(secrets / f"{n}.key") for n in ("runtime", "eval-harness", "slmgate-gate")}
    files = bundle_files(work / "policies")
    rng = random.Random(42)
    base_dir = work / "models" / "baseline"
    base_dir.mkdir(parents=True)
    (base_dir / "model.safetensors").write_bytes(b"\x03\x04" * 2048)
    baseline = hash_model_dir(base_dir, model_name=MODEL).root_digest
    pending: list[tuple[PendingDecision, datetime]] = []
    verifier = CachedVerifier()
    for i in range(decisions):  # one verification per envelope, as what-if does
        c = i // per_candidate
        made = START + timedelta(minutes=7 * c)
        if i % per_candidate == 0:
            root, evidence = _candidate_evidence(work, keys, c, baseline, made, rng)
        when = made + timedelta(minutes=10 + i % per_candidate)
        raw = _request(f"req-{i:06d}", root, baseline, f"1.{c}.{i % per_candidate}", evidence)
        req = request_from_parts(raw, evidence, source=f"bench/{i}")
        decision = evaluate_promotion(req, bundle, policy, now=when, bind_weights=False,  # type: ignore[arg-type]
                                      verify=verifier).decision
        record = sign_decision_record(decision, keys["slmgate-gate"])
        pending.append((PendingDecision(
            decision.id, decision.outcome, record, raw, tuple(evidence.items()), files,
            bundle.digest, None, f"{decision.outcome}: {MODEL} {decision.request['model']['version']}"),
            when))
    t_decide = time.perf_counter() - t0
    Ledger(work / "ledger")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work / "ledger", capture_output=True,
                          text=True, check=True).stdout.strip()
    stream = _fast_import_stream(pending, keys["slmgate-gate"], head)
    subprocess.run(["git", "fast-import", "--quiet", "--force"], cwd=work / "ledger", input=stream,
                   check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "refs/heads/main"], cwd=work / "ledger", check=True)
    outcomes: dict[str, int] = {}
    for p, _ in pending:
        outcomes[p.outcome] = outcomes.get(p.outcome, 0) + 1
    return {"decisions": decisions, "candidates": -(-decisions // per_candidate),
            "policy_queries_while_building": policy.queries, "outcomes": outcomes,
            "build_decide_s": round(t_decide, 1), "build_total_s": round(time.perf_counter() - t0, 1),
            "verification_reused_while_building": verifier.stats.hits,
            "stream_mb": round(len(stream) / 1e6, 1)}


def sample_replay(ledger: Path, n: int) -> dict[str, Any]:
    with LedgerHistory(ledger) as history:
        ids = [p.split("-", 1)[1].removesuffix(".dsse.json") for p in history.entry_paths]
        cache = BundleCache(history)
        picked = random.Random(1).sample(ids, min(n, len(ids)))
        same = sum(replay(history, d, cache).same for d in picked)
    return {"replayed": len(picked), "same": same}


def tightened(work: Path) -> Path:
    dest = work / "policies-tight"
    shutil.copytree(work / "policies", dest, ignore=shutil.ignore_patterns(".git"))
    gates = dest / "gates.yaml"
    gates.write_text(gates.read_text().replace("accuracy: {min: 0.80, max_drop: 0.03}",
                                               "accuracy: {min: 0.80, max_drop: 0.01}"))
    return dest


def per_decision_breakdown(ledger: Path, policies: Path, n: int) -> dict[str, float]:
    """ms per decision over the first ``n``: with verification reuse, without, and the policy
    query alone."""
    bundle = load_bundle(policies)
    policy = CompiledPolicy(bundle)
    with LedgerHistory(ledger) as history:
        entries = history.entry_paths[:n]
        evaluate_entries(history, entries[:5], bundle, policy, CachedVerifier())  # warm up
        t = time.perf_counter()
        evaluate_entries(history, entries, bundle, policy, CachedVerifier())
        reused = (time.perf_counter() - t) / n * 1e3

        class NoReuse(CachedVerifier):
            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                self._cache.clear()
                return super().__call__(*args, **kwargs)

        t = time.perf_counter()
        evaluate_entries(history, entries, bundle, policy, NoReuse())
        fresh = (time.perf_counter() - t) / n * 1e3
        recorded = history.load_many(entries[:50])
    facts = []
    cached = CachedVerifier()
    for r in recorded:
        from slmgate.evidence import parse_time

        now = parse_time(r.decision["evaluated_at"], what="t")
        facts.append(evaluate_promotion(r.promotion_request(), bundle, policy, now=now,
                                        bind_weights=False, verify=cached).facts)
    t = time.perf_counter()
    for f in facts:
        policy.evaluate(f)
    query = (time.perf_counter() - t) / len(facts) * 1e3
    return {"what_if_ms_per_decision_with_reuse": round(reused, 2),
            "what_if_ms_per_decision_without_reuse": round(fresh, 2),
            "policy_query_ms": round(query, 2),
            "everything_but_the_query_ms": round(reused - query, 2)}


class FixedPolicy:
    """A policy that answers at once (one recorded output): what-if minus the Rego query."""

    def __init__(self, output: dict[str, Any]) -> None:
        self.output = output

    def evaluate(self, facts: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(self.output))


def machinery(ledger: Path, policies: Path, n: int) -> dict[str, float]:
    """Decisions per second of everything what-if does but the policy query (reading the
    ledger, rebuilding requests, verifying evidence, facts, decisions, diffs), with the
    verification cache and without it."""
    bundle = load_bundle(policies)
    compiled = CompiledPolicy(bundle)
    with LedgerHistory(ledger) as history:
        history.tree  # noqa: B018 - one listing of the commit, as `what_if` reads it
        first = history.load(history.entry_paths[0])
        from slmgate.evidence import parse_time

        facts = evaluate_promotion(first.promotion_request(), bundle, compiled, bind_weights=False,
                                   now=parse_time(first.decision["evaluated_at"], what="t"),
                                   verify=CachedVerifier()).facts
        fixed = FixedPolicy(compiled.evaluate(facts))
        entries = history.entry_paths[:n]
        rates = {}
        for name, verifier in (("with_reuse", CachedVerifier()), ("without_reuse", None)):
            if verifier is None:
                class NoReuse(CachedVerifier):
                    def __call__(self, *args: Any, **kwargs: Any) -> Any:
                        self._cache.clear()
                        return super().__call__(*args, **kwargs)
                verifier = NoReuse()
            t = time.perf_counter()
            evaluate_entries(history, entries, bundle, fixed, verifier)  # type: ignore[arg-type]
            rates[f"decisions_per_second_{name}"] = round(n / (time.perf_counter() - t), 1)
    return {"decisions": n, **rates}


def promote_one_by_one(work: Path, runs: int) -> dict[str, float]:
    """``slmgate promote`` as a process on recorded requests (no ledger, no packet)."""
    with LedgerHistory(work / "ledger") as history:
        recorded = history.load_many(history.entry_paths[:runs])
    times = []
    for i, r in enumerate(recorded):
        folder = work / "promote" / str(i)
        folder.mkdir(parents=True)
        (folder / "request.json").write_bytes(r.request)
        for ref, raw in r.evidence.items():
            (folder / f"{ref}.dsse.json").write_bytes(raw)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "promote", str(folder / "request.json"),
                        "--policies", str(work / "policies-tight"), "--at", r.decision["evaluated_at"],
                        "--format", "json"], capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    mean = statistics.fmean(times)
    return {"runs": runs, "mean_s": round(mean, 3), "p50_s": round(sorted(times)[len(times) // 2], 3),
            "decisions_per_second": round(1 / mean, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--per-candidate", type=int, default=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--promote-runs", type=int, default=20)
    parser.add_argument("--breakdown", type=int, default=200)
    parser.add_argument("--machinery", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="keep the work folder here")
    parser.add_argument("--machinery-only", type=Path, default=None, metavar="WORK",
                        help="only the no-query measurement, on a work folder kept by --out")
    parser.add_argument("--what-if-only", type=Path, default=None, metavar="WORK",
                        help="only `what_if` with each --jobs, on a work folder kept by --out")
    parser.add_argument("--policies", type=Path, default=None, metavar="DIR",
                        help="with --what-if-only: the bundle to re-evaluate under (default: the work "
                             "folder's policies-tight, whose Rego is the one of the build)")
    args = parser.parse_args()
    if args.what_if_only:
        work = args.what_if_only
        for jobs in args.jobs:
            doc = what_if(work / "ledger", args.policies or work / "policies-tight", jobs=jobs).to_json()
            print(json.dumps({k: doc[k] for k in ("decisions", "jobs", "seconds", "decisions_per_second",
                                                  "flips", "transitions", "verifications",
                                                  "verifications_reused")}))
        return
    if args.machinery_only:
        work = args.machinery_only
        print(json.dumps(machinery(work / "ledger", work / "policies-tight", args.machinery), indent=2))
        return
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-whatif-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine_cpus": __import__("os").cpu_count()}
    print(f"building a ledger of {args.decisions} decisions in {work} ...", file=sys.stderr)
    results["build"] = build_ledger(work, args.decisions, args.per_candidate)
    print(json.dumps(results["build"]), file=sys.stderr)
    t = time.perf_counter()
    report = verify_ledger(work / "ledger", GateKeys.from_trust_file(work / "policies" / "trust.yaml"))
    results["verify"] = {"ok": report.ok, "decisions": report.decisions,
                         "seconds": round(time.perf_counter() - t, 1)}
    results["sample_replay"] = sample_replay(work / "ledger", 20)
    policies = tightened(work)
    results["breakdown"] = per_decision_breakdown(work / "ledger", policies, args.breakdown)
    print(json.dumps(results["breakdown"]), file=sys.stderr)
    results["machinery"] = machinery(work / "ledger", policies, args.machinery)
    print(json.dumps(results["machinery"]), file=sys.stderr)
    results["what_if"] = []
    for jobs in args.jobs:
        r = what_if(work / "ledger", policies, jobs=jobs)
        doc = r.to_json()
        results["what_if"].append({k: doc[k] for k in ("decisions", "jobs", "seconds", "decisions_per_second",
                                                       "flips", "transitions", "verifications",
                                                       "verifications_reused")})
        print(json.dumps(results["what_if"][-1]), file=sys.stderr)
    results["promote_one_by_one"] = promote_one_by_one(work, args.promote_runs)
    best = max(w["decisions_per_second"] for w in results["what_if"])
    results["speedup_vs_promote"] = round(best / results["promote_one_by_one"]["decisions_per_second"], 1)
    print(json.dumps(results, indent=2))
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
