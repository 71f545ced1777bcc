"""The ledger at size: full verify, incremental verify of one new decision, one append (with
the time of each git call in it), the index (built from nothing, caught up after the append),
the first line and the whole of `ledger log`, finding and replaying one decision — on a ledger
built by bench_whatif's builder (real, signed decisions; ``--work`` reuses one built before).

    .venv/bin/python bench/bench_ledger.py --decisions 1000 [--work DIR]

CPU seconds count this process and its git children. The append and the incremental verify
change the ledger (one real decision more); the rest only read it. Process timings are
given beside the time a bare ``import slmgate.engine.cli`` process takes in the same run (the
part of a command no ledger size changes), and the in-process first-line and lookup times
beside git's own answer (``LedgerHistory`` without the index).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_whatif import build_ledger  # noqa: E402

from slmgate.engine import CompiledPolicy, load_bundle  # noqa: E402
from slmgate.engine.ledger import _store  # noqa: E402
from slmgate.engine.ledger._checkpoint import Checkpoint, ledger_checkpoint, read_checkpoint  # noqa: E402
from slmgate.engine.ledger._decision_log import decision_log  # noqa: E402
from slmgate.engine.ledger._history import LedgerHistory  # noqa: E402
from slmgate.engine.ledger._index import INDEX_DIR, ChainIndex, resolve_decision  # noqa: E402
from slmgate.engine.ledger._store import Ledger, PendingDecision, bundle_files  # noqa: E402
from slmgate.engine.ledger._verify import GateKeys, verify_ledger  # noqa: E402
from slmgate.engine.policy._evaluate import evaluate_promotion  # noqa: E402
from slmgate.engine.promote import sign_decision_record  # noqa: E402
from slmgate.engine.request._request import request_from_parts  # noqa: E402
from slmgate.evidence import SigningKey  # noqa: E402


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and CPU seconds (this process and its children)."""
    wall, cpu = time.perf_counter(), _cpu()
    out = fn()
    return out, round(time.perf_counter() - wall, 3), round(_cpu() - cpu, 3)


def new_decision(work: Path, n: int) -> PendingDecision:
    """A real decision not yet in the ledger: the newest request under a new id, evaluated and
    signed by the gate."""
    bundle = load_bundle(work / "policies")
    with LedgerHistory(work / "ledger") as history:
        last = history.load(history.entry_paths[-1])
    doc = json.loads(last.request)
    doc["id"] = f"req-bench-append-{n}"
    raw = json.dumps(doc, indent=2).encode() + b"\n"
    req = request_from_parts(raw, last.evidence, source="bench/append")
    when = datetime.fromisoformat(last.decision["evaluated_at"].replace("Z", "+00:00")) + timedelta(minutes=1)
    decision = evaluate_promotion(req, bundle, CompiledPolicy(bundle), now=when.astimezone(UTC),
                                  bind_weights=False).decision
    record = sign_decision_record(decision, SigningKey.load(work / "secrets" / "slmgate-gate.key"))
    return PendingDecision(decision.id, decision.outcome, record, raw, tuple(last.evidence.items()),
                           bundle_files(work / "policies"), bundle.digest, None,
                           f"{decision.outcome}: bench append {n}")


def log_times(ledger: Path, *args: str) -> dict[str, Any]:
    """`slmgate ledger log` as a process: seconds to its first line and to its end."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "slmgate.engine.cli", "ledger", "log", "--ledger",
                             str(ledger), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    t_first = time.perf_counter() - t
    lines = (1 if first else 0) + sum(1 for _ in proc.stdout)
    proc.wait()
    return {"first_line_s": round(t_first, 2), "all_s": round(time.perf_counter() - t, 2), "lines": lines}


def import_only() -> dict[str, float]:
    """A process that only imports the CLI, the floor under every command: wall and CPU s."""
    _, wall, cpu = timed(lambda: subprocess.run([sys.executable, "-c", "import slmgate.engine.cli"],
                                                check=True))
    return {"wall_s": wall, "cpu_s": cpu}


def append_breakdown(writer: Ledger, pending: PendingDecision) -> dict[str, Any]:
    """One append, with the wall seconds of each git call it makes (summed by subcommand)."""
    calls: dict[str, float] = {}
    original = writer._git

    def timed_git(*args: str, env: Any = None) -> str:
        t = time.perf_counter()
        try:
            return original(*args, env=env)
        finally:
            calls[args[0]] = round(calls.get(args[0], 0.0) + time.perf_counter() - t, 3)

    writer._git = timed_git  # type: ignore[method-assign]
    try:
        _, wall, cpu = timed(lambda: writer.record_pending(pending))
    finally:
        del writer._git
    index_mib = round((writer.git_dir / "index").stat().st_size / 2**20, 1)
    return {"record_wall_s": wall, "record_cpu_s": cpu, "git_calls_wall_s": calls,
            "git_index_file_mib": index_mib}


def first_line(ledger: Path, use_index: bool, *, to_the_end: bool = True, **filters: Any) -> dict[str, Any]:
    """In-process: seconds (wall, CPU) to the first record of `ledger log` (and to the last)."""
    original = ChainIndex.open
    if not use_index:
        ChainIndex.open = classmethod(lambda cls, history: None)  # type: ignore[assignment,method-assign]
    try:
        wall, cpu = time.perf_counter(), _cpu()
        with LedgerHistory(ledger) as history:
            records = decision_log(history, **filters)
            got = next(records, None)
            first = {"first_wall_s": round(time.perf_counter() - wall, 3),
                     "first_cpu_s": round(_cpu() - cpu, 3)}
            if not to_the_end:
                return first
            n = (1 if got else 0) + sum(1 for _ in records)
        return {**first, "all_wall_s": round(time.perf_counter() - wall, 2),
                "all_cpu_s": round(_cpu() - cpu, 2), "records": n}
    finally:
        ChainIndex.open = original  # type: ignore[method-assign]


def index_figures(ledger: Path, decision_id: str) -> dict[str, Any]:
    """The index built from nothing, then used: first-line and lookups against git alone."""
    shutil.rmtree(ledger / INDEX_DIR, ignore_errors=True)
    out: dict[str, Any] = {}
    with LedgerHistory(ledger) as history:
        _, wall, cpu = timed(lambda: ChainIndex.open(history))
    size = (ledger / INDEX_DIR / "index.sqlite").stat().st_size
    out["build_from_nothing"] = {"wall_s": wall, "cpu_s": cpu, "mib": round(size / 2**20, 1)}
    with LedgerHistory(ledger) as history:
        _, wall, cpu = timed(lambda: ChainIndex.open(history))
    out["open_up_to_date"] = {"wall_s": wall, "cpu_s": cpu}
    out["log_first_line_indexed"] = first_line(ledger, True)
    out["log_first_line_git_only"] = first_line(ledger, False, to_the_end=False)
    out["log_model_none_indexed"] = first_line(ledger, True, model="no-such-model")
    out["log_model_none_git_only"] = first_line(ledger, False, model="no-such-model")
    with LedgerHistory(ledger) as history:
        _, wall, cpu = timed(lambda: resolve_decision(history, decision_id))
    out["find_one_indexed"] = {"wall_s": wall, "cpu_s": cpu}
    with LedgerHistory(ledger) as history:
        _, wall, cpu = timed(lambda: history.resolve(decision_id))
    out["find_one_git_only"] = {"wall_s": wall, "cpu_s": cpu}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=None, help="a work folder (built there if empty)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    results: dict[str, Any] = {}
    if not (work / "ledger").exists():
        work.mkdir(parents=True, exist_ok=True)
        results["build"] = build_ledger(work, args.decisions, 5)
    ledger = work / "ledger"
    # what Ledger.pack() keeps every PACK_EVERY decisions (the builder bypasses the writer)
    subprocess.run(["git", "commit-graph", "write", "--reachable", "--split"], cwd=ledger, check=True)
    gates = GateKeys.from_trust_file(work / "policies" / "trust.yaml")
    key = SigningKey.load(work / "secrets" / "slmgate-gate.key")

    report, wall, cpu = timed(lambda: verify_ledger(ledger, gates))
    assert report.ok, [str(p) for p in report.problems[:5]]
    results["decisions"] = report.decisions
    results["verify_full"] = {"wall_s": wall, "cpu_s": cpu}

    cp_path = work / "checkpoint.json"
    cp_path.write_bytes(ledger_checkpoint(ledger, key, datetime.now(UTC).replace(microsecond=0),
                                          decisions=report.decisions, head_entry=report.head_entry))
    checkpoint: Checkpoint = read_checkpoint(cp_path, gates)
    with LedgerHistory(ledger) as history:
        decision_id = history.load(history.entry_paths[len(history.entry_paths) // 2]).decision_id
    results["import_only_process"] = import_only()
    results["index"] = index_figures(ledger, decision_id)
    pending = new_decision(work, report.decisions + 1)
    writer, wall_open, _ = timed(lambda: Ledger(ledger, signing_key=key))
    results["append"] = {"open_wall_s": wall_open, **append_breakdown(writer, pending)}
    with LedgerHistory(ledger) as history:
        _, wall, cpu = timed(lambda: ChainIndex.open(history))
    results["index"]["catch_up_one_decision"] = {"wall_s": wall, "cpu_s": cpu}

    inc, wall, cpu = timed(lambda: verify_ledger(ledger, gates, since=checkpoint))
    assert inc.ok and inc.decisions == report.decisions + 1, [str(p) for p in inc.problems[:5]]
    results["verify_from_checkpoint_one_new"] = {"wall_s": wall, "cpu_s": cpu,
                                                 "entries_checked": len(inc.entries)}

    results["log_all"] = log_times(ledger)
    results["log_outcome_review"] = log_times(ledger, "--outcome", "review")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "ledger", "replay", decision_id,
                    "--ledger", str(ledger)], capture_output=True, check=False)
    results["replay_one_s"] = round(time.perf_counter() - t, 2)
    tree = subprocess.run(["du", "-sm", "--exclude=.git", str(ledger)], capture_output=True, text=True).stdout
    packed = subprocess.run(["du", "-sm", str(ledger / ".git")], capture_output=True, text=True).stdout
    results["disk_mib"] = {"working_tree": int(tree.split()[0]), "git": int(packed.split()[0])}
    results["pack_every"] = _store.PACK_EVERY
    print(json.dumps(results, indent=2))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
