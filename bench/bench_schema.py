"""Predicate JSON Schema checks: jsonschema-rs against the hand-written compiler it replaced and
``jsonschema`` with a cached validator, on the predicates the demo signs, in one run.

    .venv/bin/python bench/bench_schema.py [--iterations 3000] [--repeat 5]
                                           [--old-compiler-from 669f397]  (figures: docs/benchmarks.md)

Predicates: a weights manifest of a two-file model, the eval result (three layers, five
metrics, three datasets), a serving config, an approval, a data card and a training run,
shaped as ``slmgate demo`` writes them. Each contender builds its validator once, outside the
timing, and every contender must give the same verdict on every predicate (asserted before
timing); each check is of a predicate parsed afresh from JSON, as on the verification path.
Times are process CPU time per check, the best of ``--repeat`` passes of
``--iterations`` checks each (a burst of load from another process spoils one pass, not the
figure).

``--old-compiler-from COMMIT`` loads ``evidence/_schema_compiler.py`` as it was at COMMIT (the
module is gone from the tree) so the old figure can be measured again; leave it out to compare
only what is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jsonschema  # noqa: E402
import jsonschema_rs  # noqa: E402

from slmgate.evidence import check_predicate, format_time, hash_model_dir, predicate_schema  # noqa: E402

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HEX = "ab" * 32


def demo_predicates(tmp: Path) -> dict[str, dict[str, Any]]:
    """One predicate per kind the demo signs, with the demo's shapes."""
    from tests.conftest import data_card_predicate, eval_predicate, serving_predicate, training_run_predicate

    model = tmp / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x01" * 65536)
    (model / "config.json").write_text('{"seed": "01"}')
    when = format_time(NOW)
    evaluation = eval_predicate(HEX)
    evaluation["datasets"] = [{"layer": layer, "name": f"{layer}.jsonl", "digest": {"sha256": HEX},
                               "examples": 500} for layer in ("regression", "stress", "policy")]
    return {
        "weights-manifest": hash_model_dir(model, model_name="support-triage").to_predicate(when),
        "eval-result": evaluation,
        "serving-config": serving_predicate(),
        "approval": {"request_id": "req-1", "request_digest": "sha256:" + HEX, "decision": "approve",
                     "approved_at": when, "comment": "looks fine"},
        "data-card": data_card_predicate("tickets_scrubbed", HEX),
        "training-run": training_run_predicate([("tickets_scrubbed", HEX)], base=("base", HEX)),
    }


def old_compiler(commit: str) -> Callable[[Any], Callable[[Any], bool]]:
    """``compile_schema`` of ``evidence/_schema_compiler.py`` at ``commit``."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:evidence/_schema_compiler.py"],
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("old_schema_compiler")
    sys.modules[module.__name__] = module  # dataclass-free, but annotations resolve through it
    exec(compile(source, f"{commit}:evidence/_schema_compiler.py", "exec"), module.__dict__)
    compile_schema: Callable[[Any], Callable[[Any], bool]] = module.compile_schema
    return compile_schema


def best_per_call(check: Callable[[Any], object], doc: Any, iterations: int, repeat: int) -> float:
    """Each check gets a predicate parsed afresh from its JSON, as on the verification path:
    a validator that reads strings as UTF-8 pays for that on new objects only, and a warm,
    re-checked object would hide it."""
    text = json.dumps(doc)
    best = float("inf")
    for _ in range(repeat):
        fresh = [json.loads(text) for _ in range(iterations)]
        start = time.process_time()
        for instance in fresh:
            check(instance)
        best = min(best, time.process_time() - start)
    return best / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000, help="checks per pass")
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best one counts")
    parser.add_argument("--old-compiler-from", metavar="COMMIT", default=None,
                        help="also time evidence/_schema_compiler.py as it was at COMMIT")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        predicates = demo_predicates(Path(tmp))
    contenders: dict[str, Callable[[dict[str, Any]], Callable[[Any], object]]] = {
        f"jsonschema-rs {version('jsonschema-rs')}":
            lambda schema: jsonschema_rs.validator_for(schema).is_valid,
        f"jsonschema {version('jsonschema')} (cached validator)":
            lambda schema: jsonschema.Draft202012Validator(schema).is_valid,
    }
    if args.old_compiler_from:
        compile_schema = old_compiler(args.old_compiler_from)
        contenders[f"hand-written compiler ({args.old_compiler_from})"] = compile_schema
    results: dict[str, dict[str, float]] = {name: {} for name in contenders}
    for kind, doc in predicates.items():
        check_predicate(kind, doc)  # what slmgate itself runs: the predicate is valid
        schema = predicate_schema(kind)
        for name, make in contenders.items():
            check = make(schema)
            if check(doc) is not True:
                raise SystemExit(f"{name} refuses the valid {kind} predicate")
            results[name][kind] = best_per_call(check, doc, args.iterations, args.repeat)
    # The slmgate accept path as a whole (lookup of the cached validator included).
    path = {kind: best_per_call(lambda d, k=kind: check_predicate(k, d), doc, args.iterations,
                                args.repeat) for kind, doc in predicates.items()}
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; best of {args.repeat} x {args.iterations}, CPU time, "
          "µs per check")
    kinds = list(predicates)
    reference = next(iter(contenders))
    print(f"\n| contender | {' | '.join(kinds)} | vs {reference.split()[0]} (eval-result) |")
    print(f"|---|{'---:|' * len(kinds)}---:|")
    for name, by_kind in results.items():
        cells = " | ".join(f"{by_kind[k] * 1e6:,.1f}" for k in kinds)
        ratio = by_kind["eval-result"] / results[reference]["eval-result"]
        print(f"| {name} | {cells} | {ratio:.1f}× |")
    cells = " | ".join(f"{path[k] * 1e6:,.1f}" for k in kinds)
    print(f"| slmgate `check_predicate` (the accept path) | {cells} | — |")


if __name__ == "__main__":
    main()
