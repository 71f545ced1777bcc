"""Decision latency on the default bundle's decision cases, every engine in one run: regorus
(the default embedded engine), regopy's compiled bundle queried by entrypoint, and regopy's
`Interpreter.query()`, each checked to give the same engine-neutral decision before timing;
plus the hardened request loader and the whole `slmgate promote` process.

    .venv/bin/python bench/bench_decision.py [--iterations 2000] [--process-runs 10]
                                             [--policy-from COMMIT] [--skip-process]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slmgate.engine import CompiledPolicy, load_bundle  # noqa: E402
from slmgate.engine.policy._decision import checked_policy_output  # noqa: E402
from slmgate.engine.policy._embedded import _regopy  # noqa: E402
from slmgate.engine.policy._policytest import _apply  # noqa: E402
from slmgate.engine.policy._regorus import RegorusPolicy  # noqa: E402


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"p50_ms": samples[len(samples) // 2] * 1e3,
            "p95_ms": samples[int(len(samples) * 0.95)] * 1e3,
            "mean_ms": statistics.fmean(samples) * 1e3}


def _policy_at(commit: str) -> str:
    """promotion.rego as it was at ``commit``."""
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:policies/rego/promotion.rego"],
                          capture_output=True, text=True, check=True).stdout


def bench_engines(iterations: int, policy_from: str | None = None,
                  rounds: int = 5) -> dict[str, dict[str, float]]:
    """p50/p95/mean per engine over the decision cases, the engines taking turns in ``rounds``
    (a machine whose speed drifts slows them alike)."""
    bundle = load_bundle(ROOT / "policies", with_keys=False)
    doc = yaml.safe_load((ROOT / "policies" / "tests" / "promotion.yaml").read_text())
    facts = [_apply(doc["base"], c, "x") for c in doc["cases"]]
    compiled = CompiledPolicy(bundle)
    rego = _regopy()
    interp = rego.Interpreter()
    interp.strict_built_in_errors = True
    interp.add_data({"slmgate": bundle.data})
    for name, source in bundle.rego_modules.items():
        interp.add_module(name, source)

    def via_query(f: dict) -> object:  # type: ignore[type-arg]
        interp.set_input(f)
        return json.loads(str(interp.query("x = data.slmgate.promotion.decision")))["bindings"]["x"]

    regorus = RegorusPolicy(bundle)
    engines = [("regorus (default)", regorus.evaluate),
               ("regopy, compiled bundle", compiled.evaluate),
               ("regopy, Interpreter.query()", via_query)]
    if policy_from:
        earlier = RegorusPolicy(replace(bundle, rego_modules={**bundle.rego_modules,
                                                              "promotion.rego": _policy_at(policy_from)}))
        engines.insert(1, (f"regorus, promotion.rego at {policy_from}", earlier.evaluate))
    for f in facts:  # same answers before timing anything
        same = checked_policy_output(compiled.evaluate(f))
        for _, fn in engines:
            assert checked_policy_output(fn(f)) == same
    samples: dict[str, list[float]] = {label: [] for label, _ in engines}
    for _ in range(rounds):
        for label, fn in engines:
            for i in range(iterations // rounds):
                f = facts[i % len(facts)]
                t0 = time.perf_counter()
                fn(f)
                samples[label].append(time.perf_counter() - t0)
    return {label: _percentiles(s) for label, s in samples.items()}


def bench_process(runs: int, engine: str = "regorus", cache: bool = True) -> dict[str, float]:
    """``slmgate promote`` on a signed request, whole process, ``runs`` times after one run
    that fills the cache of validated bundles (``cache=False``: with the cache off)."""
    import os
    sys.path.insert(0, str(ROOT))
    from tests.conftest import make_world  # the test fixtures build a signed request

    tmp = Path(tempfile.mkdtemp())
    try:
        world = make_world(tmp)
        from datetime import UTC, datetime
        now = datetime.now(UTC).replace(microsecond=0)
        req = world.request(tmp / "req", world.standard_evidence(when=now))
        cmd = [str(ROOT / ".venv" / "bin" / "slmgate"), "promote", str(req),
               "--policies", str(world.policies), "--engine", engine]
        env = {**os.environ, "SLMGATE_CACHE_DIR": str(tmp / "cache") if cache else ""}
        subprocess.run(cmd, capture_output=True, text=True, env=env)
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            samples.append(time.perf_counter() - t0)
            assert r.returncode == 0, r.stdout + r.stderr
        return {"p50_s": sorted(samples)[len(samples) // 2], "min_s": min(samples), "max_s": max(samples)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_request_loading(iterations: int) -> dict[str, float]:
    """The hardened request loader (size caps, strict JSON, confined regular-file reads, private
    key scan, DSSE shape check) against the naive one it replaced (``json.loads`` and
    ``Path.read_bytes``, the same schema check), on the same signed request."""
    import json

    sys.path.insert(0, str(ROOT))
    from slmgate.engine._schemas import check_document
    from slmgate.engine.request._request import load_request
    from tests.conftest import make_world

    tmp = Path(tempfile.mkdtemp())
    try:
        world = make_world(tmp)
        req = world.request(tmp / "req", world.standard_evidence())

        def naive() -> None:
            doc = json.loads(req.read_bytes())
            check_document(doc, "promotion-request", source=str(req))
            for item in doc["evidence"]:
                (req.parent / item["path"]).read_bytes()

        out = {}
        for label, fn in (("hardened", lambda: load_request(req)), ("naive", naive)):
            fn()
            t0 = time.perf_counter()
            for _ in range(iterations):
                fn()
            out[label] = (time.perf_counter() - t0) / iterations * 1000
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_whatif(ledger: Path, policies: Path, limit: int) -> dict[str, float]:
    """What-if's own loop (load each recorded decision, rebuild its facts from the stored
    request and evidence, evaluate, compare) over the first ``limit`` decisions of ``ledger``,
    on one core, per engine: decisions per second."""
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._verify_cache import CachedVerifier
    from slmgate.engine.ledger._whatif import evaluate_entries
    from slmgate.engine.policy._engines import embedded_engine

    bundle = load_bundle(policies)
    out = {}
    with LedgerHistory(ledger) as history:
        history.tree  # noqa: B018 - one listing of the commit, as `what_if` reads it
        entries = history.entry_paths[:limit]
        for engine in ("regorus", "regopy"):
            policy = embedded_engine(bundle, engine)
            t0 = time.perf_counter()
            items = evaluate_entries(history, entries, bundle, policy, CachedVerifier())
            out[engine] = len(items) / (time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--process-runs", type=int, default=10)
    parser.add_argument("--whatif-ledger", type=Path, default=None, metavar="DIR",
                        help="a ledger (e.g. built by bench_whatif.py --out) to time what-if's loop on")
    parser.add_argument("--whatif-policies", type=Path, default=None, metavar="DIR")
    parser.add_argument("--whatif-decisions", type=int, default=1000)
    parser.add_argument("--policy-from", metavar="COMMIT", default=None,
                        help="also time promotion.rego as it was at COMMIT, on regorus")
    parser.add_argument("--skip-process", action="store_true",
                        help="do not time the whole `slmgate promote` process")
    args = parser.parse_args()
    loading = bench_request_loading(max(50, args.iterations // 4))
    print(f"request loading: hardened {loading['hardened']:.3f} ms, naive json.loads + read_bytes "
          f"{loading['naive']:.3f} ms ({loading['hardened'] / loading['naive']:.2f}x)")
    engines = bench_engines(args.iterations, args.policy_from)
    for label, r in engines.items():
        print(f"{label:<32} p50 {r['p50_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms  mean {r['mean_ms']:.3f} ms")
    fast, compiled, query = (engines[k] for k in ("regorus (default)", "regopy, compiled bundle",
                                                  "regopy, Interpreter.query()"))
    if args.policy_from:
        earlier = engines[f"regorus, promotion.rego at {args.policy_from}"]
        print(f"today's promotion.rego over the one at {args.policy_from}, on regorus: "
              f"{earlier['p50_ms'] / fast['p50_ms']:.2f}x (p50)")
    print(f"regorus over regopy's compiled bundle: {compiled['p50_ms'] / fast['p50_ms']:.1f}x (p50); "
          f"compiled bundle over query(): {query['p50_ms'] / compiled['p50_ms']:.1f}x")
    for engine, cache in () if args.skip_process else (("regorus", True), ("regorus", False),
                                                        ("regopy", True)):
        proc = bench_process(args.process_runs, engine, cache)
        print(f"slmgate promote --engine {engine}, bundle cache {'on' if cache else 'off'}, whole process "
              f"({args.process_runs} runs): p50 {proc['p50_s']:.3f} s (min {proc['min_s']:.3f}, "
              f"max {proc['max_s']:.3f})")
    if args.whatif_ledger:
        policies = args.whatif_policies or args.whatif_ledger.parent / "policies"
        rates = bench_whatif(args.whatif_ledger, policies, args.whatif_decisions)
        print(f"what-if loop, one core, {args.whatif_decisions} decisions: regorus {rates['regorus']:.1f}/s, "
              f"regopy {rates['regopy']:.1f}/s ({rates['regorus'] / rates['regopy']:.1f}x)")


if __name__ == "__main__":
    main()
