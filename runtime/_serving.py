"""Serving-config capture: load a model on the target device, time a smoke run on suite-like
tickets, and describe the device, software, dtype, batch shape, latency and weights digest.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._evals import default_suite_dir
from ._features import featurize_batch
from ._model import load_model, resolve_device
from ._tensors import tensor_digest

_SMOKE_TICKETS = 64  # distinct suite texts cycled through the timed batches


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _total_ram() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _nvidia_driver() -> str | None:
    """The driver version from ``nvidia-smi``, or None if it cannot be asked."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0].strip() if out.strip() else None


def _max_rss_bytes() -> int | None:
    """Peak resident set size of this process (all of it, not only the model)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _smoke_texts() -> list[str]:
    """Suite-like inputs: the first regression tickets of the shipped suite."""
    path = default_suite_dir() / "regression.jsonl"
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(_SMOKE_TICKETS), fh,
                                                             strict=False)]


def capture_serving_config(
    model_dir: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 8,
    sequence_length: int = 64,
    warmup: int = 5,
    iterations: int = 50,
) -> dict[str, Any]:
    """Load ``model_dir`` on ``device`` as ``dtype``, time ``iterations`` forward passes of
    ``batch_size`` tickets padded or cut to ``sequence_length`` hashed features (after
    ``warmup`` untimed ones), and return the serving-config predicate.

    Raises ``DeviceUnavailableError`` (a ``RuntimeError``) when the device is not usable here,
    ``ValueError`` for a bad dtype or size.
    """
    import torch

    for name, value, low in (("batch_size", batch_size, 1), ("sequence_length", sequence_length, 1),
                             ("warmup", warmup, 0), ("iterations", iterations, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    dev, _ = resolve_device(device, dtype)
    model = load_model(model_dir, device=str(dev), dtype=dtype)
    texts = _smoke_texts()
    rows = featurize_batch(texts, model.hashing, pad_to=sequence_length)
    batches = []
    for i in range(max(1, len(rows) // batch_size)):
        chunk = [rows[(i * batch_size + j) % len(rows)] for j in range(batch_size)]
        batches.append(torch.tensor(chunk, dtype=torch.long, device=dev))

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    latencies: list[float] = []
    with torch.inference_mode():
        for i in range(warmup):
            model.logits(batches[i % len(batches)])
        sync()
        for i in range(iterations):
            start = time.perf_counter()
            model.logits(batches[i % len(batches)])
            sync()
            latencies.append(time.perf_counter() - start)

    if cuda:
        props = torch.cuda.get_device_properties(dev)
        device_info = {"type": "cuda", "name": torch.cuda.get_device_name(dev),
                       "compute_capability": f"{props.major}.{props.minor}",
                       "memory_bytes": int(props.total_memory)}
        peak: int | None = int(torch.cuda.max_memory_allocated(dev))
        driver = _nvidia_driver()
    else:
        device_info = {"type": "cpu", "name": _cpu_name(), "compute_capability": None,
                       "memory_bytes": _total_ram()}
        peak = _max_rss_bytes()
        driver = None

    return {
        "device": device_info,
        "software": {"torch_version": torch.__version__,
                     "cuda_version": torch.version.cuda if cuda else None,
                     "driver_version": driver,
                     "python_version": platform.python_version()},
        "dtype": dtype,
        "quantization": "none",
        "batch_size": batch_size,
        "sequence_length": sequence_length,
        "warmup_iterations": warmup,
        "timed_iterations": iterations,
        "latency_ms": {"p50": round(_percentile(latencies, 50) * 1e3, 6),
                       "p95": round(_percentile(latencies, 95) * 1e3, 6)},
        "throughput_per_s": round(batch_size * iterations / sum(latencies), 6),
        "peak_memory_bytes": peak,
        "tensor_digest": {"sha256": tensor_digest(model.state_dict())},
        "captured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
