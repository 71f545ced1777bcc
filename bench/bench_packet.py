"""Packet render time: the demo's approved packet, and synthetic packets carrying 10, 25 and 50
evidence envelopes (3 standard ones plus signed approvals), to show growth in evidence items;
then a promotion of 1,000 envelopes through the CLI, as a user runs it.

    .venv/bin/python bench/bench_packet.py [--demo-dir out/demo] [--runs 5] [--sizes 10,25,50]
                                           [--large 1000] [--results FILE]  (figures: docs/benchmarks.md)

The large case signs its envelopes a minute before it runs (so every one verifies), runs
``slmgate promote REQUEST --signing-key gate.key --packet OUT.pdf`` and then
``slmgate packet verify OUT.pdf --trust trust.yaml`` (pages against the gate's seal) and the same
with ``--rerender`` (pages rendered again), each as its own process, and reports the
wall clock, the child's CPU time and its peak RSS (from ``wait4``).

Without --demo-dir the demo is run first (`slmgate demo`, ~30 s, trains on the CPU). Times are
for ``render_packet`` alone (content already built), median and minimum of --runs, both wall
clock and process CPU time (the CPU time is what other load on a shared machine disturbs least);
one warm-up render per packet is not counted. `slmgate packet render` is also timed once as a
whole process (imports, record verification, policy replay and render).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import weasyprint  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from slmgate.engine import CompiledPolicy, evaluate_promotion, load_bundle, load_request  # noqa: E402
from slmgate.engine.packet._content import packet_attachments, packet_content  # noqa: E402
from slmgate.engine.packet._render import Attachment, render_packet  # noqa: E402
from slmgate.engine.packet._verify import read_record, replay_record  # noqa: E402
from slmgate.engine.policy._scaffold import init_policy_repo  # noqa: E402
from slmgate.evidence import (  # noqa: E402
    SigningKey,
    format_time,
    hash_model_dir,
    make_statement,
    sign_envelope,
)

MODEL = "support-triage"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
Parts = tuple[dict[str, Any], list[Attachment]]


@dataclass(frozen=True)
class Timing:
    name: str
    evidence: int
    pages: int
    size: int
    wall: list[float]
    cpu: list[float]


def _time_render(name: str, evidence: int, parts: Parts, out: Path, runs: int) -> Timing:
    content, attachments = parts
    render_packet(content, attachments, out)  # warm-up: fonts, CSS, imports
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        render_packet(content, attachments, out)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return Timing(name, evidence, len(PdfReader(out).pages), out.stat().st_size, wall, cpu)


# --- the demo packet ------------------------------------------------------------------------


def _demo_parts(demo: Path) -> tuple[Parts, str]:
    """The approved weekly retrain's packet, rebuilt from the demo's ledger (with its bundle)."""
    from slmgate.engine.ledger._history import LedgerHistory

    with LedgerHistory(demo / "ledger") as history:
        for entry in history.decisions():
            if entry.decision["outcome"] != "approve":
                continue
            bundle = load_bundle(demo / "policy-repo")
            record = read_record(entry.record, bundle.trust, "demo trust policy")
            request, result, _ = replay_record(record, entry.request, entry.evidence, bundle)
            return (packet_content(result.decision, result.facts, bundle, result.verified),
                    packet_attachments(request, record.raw, result.decision, bundle)), entry.decision_id
    raise SystemExit(f"no approved decision in {demo / 'ledger'}")


def _time_cli(demo: Path, decision_id: str, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "packet", "render", "--ledger",
                    str(demo / "ledger"), "--decision", decision_id, "--policies",
                    str(demo / "policy-repo"), "-o", str(out)], check=True, capture_output=True)
    return time.perf_counter() - start


# --- synthetic packets with N evidence items ------------------------------------------------


def _envelope(key: SigningKey, subject: str, kind: str, predicate: dict[str, Any]) -> bytes:
    return sign_envelope(make_statement(MODEL, subject, kind, predicate), [key]).to_json()


def _synthetic_request(root: Path, n: int, at: datetime = NOW) -> Path:
    """A promotion request carrying ``n`` envelopes signed at ``at``: weights manifest, eval
    result, serving config, and ``n - 3`` approvals from the three approver identities."""
    if not (root / "policies").exists():
        init_policy_repo(root / "policies", root / "secrets")
        for name, seed in (("candidate", b"\x01"), ("baseline", b"\x02")):
            (root / name).mkdir()
            (root / name / "model.safetensors").write_bytes(seed * 65536)
            (root / name / "config.json").write_text(json.dumps({"seed": seed.hex()}))
    key: Callable[[str], SigningKey] = lambda name: SigningKey.load(root / "secrets" / f"{name}.key")  # noqa: E731
    manifest = hash_model_dir(root / "candidate", model_name=MODEL)
    sha, base = manifest.root_digest, hash_model_dir(root / "baseline", model_name=MODEL).root_digest
    when = format_time(at)
    metrics = {"regression": {"accuracy": (0.95, 0.93), "macro_f1": (0.94, 0.92)},
               "stress": {"accuracy": (0.90, 0.85)},
               "policy": {"pii_escalation_recall": (1.0, 1.0), "false_escalation_rate": (0.02, 0.03)}}
    evidence = {
        "weights-manifest": _envelope(key("runtime"), sha, "weights-manifest", manifest.to_predicate(when)),
        "eval-result": _envelope(key("eval-harness"), sha, "eval-result", {
            "suite": {"name": MODEL, "version": "1"}, "harness": {"name": "bench", "version": "0"},
            "datasets": [], "started_at": when, "finished_at": when,
            "baseline": {"name": MODEL, "digest": {"sha256": base}},
            "serving": {"device": "cpu", "dtype": "float32"},
            "layers": {layer: {"metrics": {m: {"candidate": c, "baseline": b} for m, (c, b) in ms.items()}}
                       for layer, ms in metrics.items()}}),
        "serving-config": _envelope(key("runtime"), sha, "serving-config", {
            "device": {"type": "cpu", "name": "bench cpu"}, "software": {"torch_version": "2.13.0+cpu"},
            "dtype": "float32", "quantization": "none", "batch_size": 8, "sequence_length": 64,
            "latency_ms": {"p50": 0.4, "p95": 0.9}, "throughput_per_s": 1000.0, "captured_at": when}),
    }
    approvers = ("ml-lead", "release-manager", "privacy-officer")
    for i in range(n - 3):
        evidence[f"approval-{i:03d}"] = _envelope(key(approvers[i % 3]), sha, "approval", {
            "request_id": f"req-bench-{n}", "request_digest": "sha256:" + "0" * 64,
            "decision": "approve", "approved_at": when, "comment": f"bench approval {i}"})
    folder = root / f"req-{n}-{at:%Y%m%dT%H%M%S}"
    folder.mkdir(exist_ok=True)
    for ref, raw in evidence.items():
        (folder / f"{ref}.dsse.json").write_bytes(raw)
    doc = {"apiVersion": "slmgate.dev/v1", "kind": "PromotionRequest", "id": f"req-bench-{n}",
           "summary": f"bench promotion with {n} envelopes", "requested_by": "bench@example.com",
           "model": {"name": MODEL, "version": "1.1.0", "weights_digest": f"sha256:{sha}"},
           "baseline": {"name": MODEL, "version": "1.0.0", "weights_digest": f"sha256:{base}"},
           "change_classes": ["weights_retrain"], "changes": ["Weights retrained (bench)"],
           "deployment": {"purpose": "ticket_routing", "regions": ["eu"], "subprocessors": ["eu-gpu-cloud"]},
           "training_data": [{"dataset": "tickets_scrubbed", "oldest_record": "2026-06-01"}],
           "evidence": [{"ref": ref, "path": f"{ref}.dsse.json"} for ref in evidence]}
    (folder / "request.json").write_text(json.dumps(doc, indent=2))
    return folder / "request.json"


def _synthetic_parts(root: Path, n: int) -> Parts:
    """The content and attachments of ``_synthetic_request``'s promotion, decided at NOW."""
    request = load_request(_synthetic_request(root, n))
    bundle = load_bundle(root / "policies")
    result = evaluate_promotion(request, bundle, CompiledPolicy(bundle), now=NOW, bind_weights=False)
    return (packet_content(result.decision, result.facts, bundle, result.verified),
            packet_attachments(request, None, result.decision, bundle))


# --- the large promotion, through the CLI ---------------------------------------------------


@dataclass(frozen=True)
class Process:
    wall: float
    cpu: float  # user + system of the child
    peak_rss_mib: float
    code: int


def _run(args: list[str]) -> Process:
    """One CLI process: wall clock, its CPU time and its peak RSS (from wait4's rusage)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "slmgate.engine.cli", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return Process(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode)


def _large(root: Path, n: int) -> tuple[Process, Process, Process, int, int]:
    """``slmgate promote --packet`` of a request carrying ``n`` envelopes signed a minute ago
    (so all verify), then ``slmgate packet verify`` of that (sealed) packet, against its seal and
    with ``--rerender`` (the alternative: every page rendered again)."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    request = _synthetic_request(root, n, at)
    packet = root / f"large-{n}.pdf"
    promote = _run(["promote", str(request), "--policies", str(root / "policies"), "--signing-key",
                    str(root / "secrets" / "slmgate-gate.key"), "--packet", str(packet)])
    if promote.code not in (0, 1, 3) or not packet.exists():
        raise SystemExit(f"promote of the {n}-envelope request exited {promote.code}")
    verify = _run(["packet", "verify", str(packet), "--trust", str(root / "policies" / "trust.yaml")])
    if verify.code != 0:
        raise SystemExit(f"packet verify of the {n}-envelope packet exited {verify.code}")
    rerender = _run(["packet", "verify", str(packet), "--trust", str(root / "policies" / "trust.yaml"),
                     "--rerender"])
    if rerender.code != 0:
        raise SystemExit(f"packet verify --rerender of the {n}-envelope packet exited {rerender.code}")
    return promote, verify, rerender, len(PdfReader(packet).pages), packet.stat().st_size


# --- report ---------------------------------------------------------------------------------


def _row(t: Timing) -> str:
    return (f"| {t.name} | {t.evidence} | {t.pages} | {t.size / 1024:.0f} KiB | "
            f"{statistics.median(t.wall):.2f} s | {min(t.wall):.2f} s | "
            f"{statistics.median(t.cpu):.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="10,25,50")
    parser.add_argument("--large", type=int, default=1000,
                        help="Envelopes of the promotion run through `slmgate promote --packet` and "
                             "`slmgate packet verify` (0: skip).")
    parser.add_argument("--results", type=Path, default=None, help="Write the markdown here.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="slmgate-bench-packet-") as tmp_name:
        tmp = Path(tmp_name)
        demo = args.demo_dir
        if demo is None:
            demo = tmp / "demo"
            print("running `slmgate demo` first ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "demo", "--out", str(demo)],
                           check=True, capture_output=True)
        parts, decision_id = _demo_parts(demo)
        timings = [_time_render("demo (01-weekly-retrain)", len(parts[0]["evidence"]), parts,
                                tmp / "demo.pdf", args.runs)]
        cli = _time_cli(demo, decision_id, tmp / "cli.pdf")
        for n in sizes:
            timings.append(_time_render(f"synthetic, {n} envelopes", n, _synthetic_parts(tmp / "w", n),
                                        tmp / f"n{n}.pdf", args.runs))
        large = _large(tmp / "w", args.large) if args.large else None
    load_after = os.getloadavg()
    synthetic = timings[1:]
    lines = [
        "| packet | evidence items | pages | size | wall median | wall min | CPU median |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(_row(t) for t in timings),
    ]
    if len(synthetic) >= 2:
        a, b = synthetic[0], synthetic[-1]
        cpu_a, cpu_b = statistics.median(a.cpu), statistics.median(b.cpu)
        per_item = (cpu_b - cpu_a) / (b.evidence - a.evidence)
        lines += ["", f"Growth: {per_item * 1e3:.0f} ms CPU per extra evidence item between "
                      f"{a.evidence} and {b.evidence}; CPU ratio {cpu_b / cpu_a:.2f} for "
                      f"{b.evidence / a.evidence:.1f}× the items (linear or better when ≤ that factor)."]
    lines += ["", f"`slmgate packet render --ledger` as a whole process (imports, record check, policy "
                  f"replay, render): {cli:.2f} s wall."]
    if large:
        promote, verify, rerender, pages, size = large
        lines += ["", f"A promotion of {args.large} envelopes, whole processes ({pages} pages, "
                      f"{size / 1024:.0f} KiB):", "",
                  "| command | wall | CPU | peak RSS |", "|---|---:|---:|---:|",
                  f"| `slmgate promote ... --packet` | {promote.wall:.2f} s | {promote.cpu:.2f} s | "
                  f"{promote.peak_rss_mib:.0f} MiB |",
                  f"| `slmgate packet verify` (the seal) | {verify.wall:.2f} s | {verify.cpu:.2f} s | "
                  f"{verify.peak_rss_mib:.0f} MiB |",
                  f"| `slmgate packet verify --rerender` | {rerender.wall:.2f} s | {rerender.cpu:.2f} s | "
                  f"{rerender.peak_rss_mib:.0f} MiB |", "",
                  f"The seal check is {rerender.cpu / verify.cpu:.1f}× less CPU than re-rendering."]
    env = (f"{platform.node() or 'host'}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
           f"WeasyPrint {weasyprint.__version__}; load average {load_before[0]:.1f} before, "
           f"{load_after[0]:.1f} after; {args.runs} runs after one warm-up.")
    report = "\n".join([env, "", *lines])
    print(report)
    if args.results:
        args.results.write_text(report + "\n")


if __name__ == "__main__":
    main()
