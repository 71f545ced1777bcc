"""Serving-config capture on the CPU, and a clear refusal where CUDA is missing."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from slmgate.runtime import capture_serving_config, load_model, tensor_digest
from slmgate.runtime._model import DeviceUnavailableError


def test_cpu_capture(demo_models: dict[str, Path]) -> None:
    import torch

    config = capture_serving_config(demo_models["candidate"], batch_size=4, sequence_length=32,
                                    warmup=2, iterations=20)
    assert json.loads(json.dumps(config)) == config
    assert config["device"]["type"] == "cpu" and config["device"]["name"]
    assert config["device"]["compute_capability"] is None
    assert config["software"] == {"torch_version": torch.__version__, "cuda_version": None,
                                  "driver_version": None,
                                  "python_version": platform.python_version()}
    assert (config["dtype"], config["quantization"]) == ("float32", "none")
    assert (config["batch_size"], config["sequence_length"]) == (4, 32)
    assert (config["warmup_iterations"], config["timed_iterations"]) == (2, 20)
    latency = config["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"]
    assert config["throughput_per_s"] > 0
    assert config["peak_memory_bytes"] is None or config["peak_memory_bytes"] > 0
    loaded = load_model(demo_models["candidate"])
    assert config["tensor_digest"] == {"sha256": tensor_digest(loaded.state_dict())}
    assert config["captured_at"].endswith("Z")


def test_dtype_changes_the_digest(demo_models: dict[str, Path]) -> None:
    f32 = capture_serving_config(demo_models["candidate"], warmup=0, iterations=1)
    bf16 = capture_serving_config(demo_models["candidate"], dtype="bfloat16", warmup=0,
                                  iterations=1)
    assert bf16["dtype"] == "bfloat16"
    assert bf16["tensor_digest"] != f32["tensor_digest"]
    assert f32["latency_ms"]["p50"] == f32["latency_ms"]["p95"]


def test_missing_cuda_is_a_clear_error(demo_models: dict[str, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(DeviceUnavailableError, match=r"'cuda' requested but CUDA is not"):
        capture_serving_config(demo_models["candidate"], device="cuda")


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"iterations": 0}, {"dtype": "int8"},
                                 {"device": "tpu"}])
def test_bad_arguments(demo_models: dict[str, Path], bad: dict[str, object]) -> None:
    with pytest.raises((ValueError, DeviceUnavailableError)):
        capture_serving_config(demo_models["candidate"], **bad)  # type: ignore[arg-type]
