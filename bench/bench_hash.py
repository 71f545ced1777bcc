"""Weight-hashing throughput: slmgate against model-signing, ``openssl dgst`` and ``sha256sum``.

Generates one large file and a directory of many shards in a temporary folder, warms the page
cache, then runs every tool on the same files, interleaved, ``--repeat`` times; each run is a
fresh process so its peak RSS is its own. Prints GB/s (best and median of the runs, 1 GB =
1e9 bytes), GB per CPU-second (user + system time of all threads: how much work each byte
costs, which other load on the machine does not change much), peak RSS, and the ratios the
issue sets goals for, as Markdown tables.

    .venv/bin/python bench/bench_hash.py [--large-gib 2] [--shards 64] [--shard-mib 32]
                                         [--repeat 3] [--dir /tmp]

model-signing is used through its Python hashing API (``model_signing.hashing.Config``); it is
installed for the benchmark only. Its package ``__init__`` imports its signing stack (pyOpenSSL,
sigstore), which the hashing API does not need, so the worker loads its hashing modules alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

MS_SHARD = 1_000_000_000  # model-signing's default shard size, used by both sharded modes

# name -> worker method; each run is a fresh worker process of this script.
METHODS: dict[str, str] = {
    "slmgate sha256 per-file": "slmgate-files",
    "slmgate sha256 sharded": "slmgate-shards",
    "slmgate blake3": "slmgate-blake3",
    "model-signing sha256 per-file": "ms-files",
    "model-signing sha256 sharded": "ms-shards",
    "model-signing blake3": "ms-blake3",
    "openssl dgst -sha256": "openssl",
    "sha256sum": "sha256sum",
}
RATIOS = (
    ("slmgate sha256 sharded", "model-signing sha256 sharded", 1.1),
    ("slmgate blake3", "model-signing blake3", 1.0),
    ("slmgate sha256 per-file", "model-signing sha256 per-file", None),
)


def _model_signing_hashing() -> types.ModuleType:
    """Import ``model_signing.hashing`` without running the package's ``__init__``."""
    spec = importlib.util.find_spec("model_signing")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("model-signing is not installed (pip install model-signing)")
    package = types.ModuleType("model_signing")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["model_signing"] = package
    import model_signing.hashing as hashing

    return hashing


def _root_digest(manifest: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for descriptor in manifest.resource_descriptors():
        h.update(descriptor.digest.digest_value)
    return h.hexdigest()


def _files(model_dir: Path) -> list[str]:
    return sorted(str(p) for p in model_dir.rglob("*") if p.is_file())


def worker(method: str, model_dir: Path) -> None:
    """Hash ``model_dir`` once with ``method``; print seconds, root digest and peak RSS (of the
    command it runs, for the command-line tools)."""
    import resource

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    root = None
    who = resource.RUSAGE_SELF
    if method.startswith("slmgate"):
        from slmgate.evidence import hash_model_dir

        table: dict[str, dict[str, Any]] = {
            "slmgate-files": {}, "slmgate-shards": {"shard_size": MS_SHARD},
            "slmgate-blake3": {"algorithm": "blake3"}}
        kwargs = table[method]
        cpu_before = cpu(who)
        start = time.perf_counter()
        root = hash_model_dir(model_dir, **kwargs).root_digest
    elif method.startswith("ms-"):
        hashing = _model_signing_hashing()
        config = hashing.Config()
        if method == "ms-shards":
            config.use_shard_serialization(shard_size=MS_SHARD)
        elif method == "ms-blake3":
            config.use_file_serialization(hashing_algorithm="blake3")
        cpu_before = cpu(who)
        start = time.perf_counter()
        root = _root_digest(config.hash(model_dir))
    else:
        argv = (["openssl", "dgst", "-sha256"] if method == "openssl" else ["sha256sum"])
        who = resource.RUSAGE_CHILDREN
        cpu_before = cpu(who)
        start = time.perf_counter()
        subprocess.run(argv + _files(model_dir), check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(who).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu(who) - cpu_before, "root": root, "rss": rss}))


def run_once(name: str, model_dir: Path) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", METHODS[name], str(model_dir)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def make_data(base: Path, large_gib: float, shards: int, shard_mib: int) -> dict[str, Path]:
    need = int(large_gib * (1 << 30)) + shards * shard_mib * (1 << 20)
    free = shutil.disk_usage(base).free
    if free < need * 1.2:
        raise SystemExit(f"{base}: {free / 1e9:.1f} GB free, the data needs {need / 1e9:.1f} GB")
    large, many = base / "large", base / "many"
    large.mkdir()
    many.mkdir()
    block = 16 << 20
    with (large / "model.safetensors").open("wb") as fh:
        left = int(large_gib * (1 << 30))
        while left:
            n = min(block, left)
            fh.write(os.urandom(n))
            left -= n
    for i in range(shards):
        (many / f"model-{i:05d}-of-{shards:05d}.safetensors").write_bytes(
            os.urandom(shard_mib << 20))
    os.sync()
    return {"one large file": large, "many shards": many}


def warm(model_dir: Path) -> None:
    for path in _files(Path(model_dir)):
        with open(path, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-gib", type=float, default=2.0)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--shard-mib", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary data folder is made (and removed)")
    parser.add_argument("--data", type=Path, default=None,
                        help="reuse (or make and keep) the data in DATA/large and DATA/many")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return

    if args.data is not None and (args.data / "large").is_dir() and (args.data / "many").is_dir():
        base, keep = args.data, True
        sets = {"one large file": base / "large", "many shards": base / "many"}
    else:
        keep = args.data is not None
        base = args.data or Path(tempfile.mkdtemp(prefix="slmgate-bench-", dir=args.dir))
        base.mkdir(parents=True, exist_ok=True)
    try:
        if not keep or not (base / "large").is_dir():
            sets = make_data(base, args.large_gib, args.shards, args.shard_mib)
        print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        rows = []
        for label, model_dir in sets.items():
            size = sum(os.path.getsize(p) for p in _files(model_dir))
            warm(model_dir)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
            names = list(METHODS)
            for round_ in range(args.repeat):
                # each round starts one tool later, so none always runs right after the slowest
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    runs[name].append(run_once(name, model_dir))
                    print(f"  {label}: {name}: {size / runs[name][-1]['seconds'] / 1e9:.2f} GB/s",
                          file=sys.stderr, flush=True)
            roots = {name: {r["root"] for r in rs} for name, rs in runs.items()}
            for mine, theirs in (("slmgate sha256 per-file", "model-signing sha256 per-file"),
                                 ("slmgate sha256 sharded", "model-signing sha256 sharded"),
                                 ("slmgate blake3", "model-signing blake3")):
                if roots[mine] != roots[theirs] or len(roots[mine]) != 1:
                    raise SystemExit(f"{label}: root digests differ: {mine} {roots[mine]} "
                                     f"vs {theirs} {roots[theirs]}")
            for name, rs in runs.items():
                times = [r["seconds"] for r in rs]
                rss = max(r["rss"] for r in rs)
                cpu_s = min(r["cpu"] for r in rs)
                rows.append((label, size, name, size / min(times) / 1e9,
                             size / statistics.median(times) / 1e9, size / cpu_s / 1e9, rss))
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        print("| data | tool | best GB/s | median GB/s | GB per CPU-second | peak RSS MiB |")
        print("|---|---|---:|---:|---:|---:|")
        for label, size, name, best, median, per_cpu, rss in rows:
            print(f"| {label} ({size / 2**30:.1f} GiB) | {name} | {best:.2f} | {median:.2f} | "
                  f"{per_cpu:.2f} | {rss / 2**20:.0f} |")
        print("\n| data | ratio (best) | goal |")
        print("|---|---|---|")
        best = {(r[0], r[2]): r[3] for r in rows}
        for label in sets:
            for mine, theirs, goal in RATIOS:
                ratio = best[(label, mine)] / best[(label, theirs)]
                verdict = "" if goal is None else (f"≥ {goal} {'met' if ratio >= goal else 'MISSED'}")
                print(f"| {label} | {mine} / {theirs} = {ratio:.2f}x | {verdict} |")
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
