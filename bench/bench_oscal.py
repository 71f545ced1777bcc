"""What compliance-trestle would cost `ledger export --oscal` as a runtime dependency, against the
hand-built JSON it writes now: import time in a fresh process, building one decision's document
(hand-built, then validated into trestle's pydantic models as building with them would at least
do), the whole `ledger export --oscal` process, and the packages and megabytes trestle adds to
the runtime dependencies.

    .venv/bin/python bench/bench_oscal.py [--runs 7]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fresh(code: str, runs: int) -> float:
    """Median wall seconds of ``python -c code`` in a fresh process."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _requires(dist: str) -> list[str]:
    out = []
    for req in md.distribution(dist).requires or []:
        if "extra ==" not in req:
            out.append(re.split(r"[ <>=!~;\[(]", req)[0].lower().replace("_", "-"))
    return out


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = [r.lower() for r in roots]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        stack += _requires(name)
    return seen


def _size(dist: str) -> int:
    d = md.distribution(dist)
    return sum(os.path.getsize(d.locate_file(f)) for f in d.files or [] if os.path.exists(d.locate_file(f)))


def install_cost() -> dict[str, object]:
    runtime = _requires("slmgate")  # the runtime dependencies (extras left out)
    base = _closure(runtime)
    added = sorted(_closure(["compliance-trestle"]) - base)
    return {"runtime_packages": len(base), "runtime_mb": round(sum(map(_size, base)) / 1e6, 1),
            "trestle_adds_packages": len(added), "trestle_adds_mb": round(sum(map(_size, added)) / 1e6, 1),
            "added": added}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from trestle.oscal.assessment_results import AssessmentResults

    from slmgate.engine import Ledger
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._oscal import assessment_results
    from tests.conftest import make_world
    from tests.engine.ledger.test_ledger import kit_requests, record_promotions

    out: dict[str, object] = {"load_before": os.getloadavg()}
    out["import_s"] = {
        "python -c pass": _fresh("pass", args.runs),
        "slmgate.engine.ledger._oscal (hand-built)": _fresh("import slmgate.engine.ledger._oscal", args.runs),
        "trestle.oscal.assessment_results": _fresh("import trestle.oscal.assessment_results", args.runs),
        "both (what building with trestle would import)": _fresh(
            "import slmgate.engine.ledger._oscal, trestle.oscal.assessment_results", args.runs),
    }
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(Path(tmp) / "world")
        ledger = Path(tmp) / "ledger"
        ids = record_promotions(world, Ledger(ledger, signing_key=world.key("slmgate-gate")),
                                kit_requests(world, Path(tmp)))
        with LedgerHistory(ledger) as history:
            recorded = history.load(history.resolve(ids[2]))
            bundle = history.bundle_files(recorded.manifest.bundle_digest)
        build, validate = [], []
        for _ in range(args.runs * 10):
            start = time.perf_counter()
            doc = assessment_results(recorded, bundle)
            text = json.dumps(doc, indent=2, sort_keys=True)
            build.append(time.perf_counter() - start)
            start = time.perf_counter()
            AssessmentResults.model_validate(doc["assessment-results"]).oscal_serialize_json()
            validate.append(time.perf_counter() - start)
        out["document_ms"] = {"hand-built + json.dumps": statistics.median(build) * 1e3,
                              "trestle model_validate + serialize": statistics.median(validate) * 1e3,
                              "bytes": len(text)}
        cli = [sys.executable, "-m", "slmgate.engine.cli", "ledger", "export", ids[2], "--ledger",
               str(ledger), "--oscal", str(Path(tmp) / "ar.json")]
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        out["ledger_export_oscal_process_s"] = statistics.median(times)
    out["install"] = install_cost()
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
