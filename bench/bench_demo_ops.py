"""What issue 15's steps add to `slmgate demo`: the weeks in service (ticket streams served,
metrics.csv imported, ops-metrics signed and recorded) and the program report (PDF and HTML),
timed inside one demo run beside the whole demo (the alternative: the demo without them is the
total less these two).

    .venv/bin/python bench/bench_demo_ops.py [--out DIR]   (figures: docs/benchmarks.md)

Wall clock and process CPU time of each step; the load average is printed before and after
(the CPU share is the figure other load on a shared machine disturbs least).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slmgate.engine import demo


def _timed(name: str, fn: Callable[..., Any],
           times: dict[str, tuple[float, float]]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name] = (time.perf_counter() - wall, time.process_time() - cpu)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-demo-")) / "demo"
    times: dict[str, tuple[float, float]] = {}
    demo._operate = _timed("weeks in service", demo._operate, times)  # type: ignore[assignment]
    demo._report = _timed("program report", demo._report, times)  # type: ignore[assignment]
    print(f"load average before: {os.getloadavg()}")
    run = _timed("whole demo", demo.run_demo, times)
    run(out, progress=lambda _: None)
    print(f"load average after:  {os.getloadavg()}")
    total_wall, total_cpu = times["whole demo"]
    for name, (wall, cpu) in times.items():
        print(f"{name:<18} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
              f"({100 * wall / total_wall:4.1f} % of the demo's wall, "
              f"{100 * cpu / total_cpu:4.1f} % of its CPU)")


if __name__ == "__main__":
    main()
