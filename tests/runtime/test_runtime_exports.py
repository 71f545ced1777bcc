"""The public surface of slmgate.runtime, and that importing it leaves torch alone."""

from __future__ import annotations

import subprocess
import sys

import slmgate.runtime


def test_all_is_pinned() -> None:
    assert slmgate.runtime.__all__ == [
        "DeviceUnavailableError",
        "SuiteError",
        "TrainingConfig",
        "capture_serving_config",
        "import_lm_eval",
        "import_model_index",
        "load_model",
        "predict",
        "run_eval",
        "tensor_digest",
        "train_demo_models",
        "train_model",
        "training_datasets",
        "write_training_datasets",
    ]
    for name in slmgate.runtime.__all__:
        assert getattr(slmgate.runtime, name).__module__.startswith("slmgate.runtime._")


def test_suite_error_is_a_value_error() -> None:
    assert issubclass(slmgate.runtime.SuiteError, ValueError)


def test_import_does_not_import_torch() -> None:
    code = ("import sys, slmgate.runtime, slmgate.runtime._tickets; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
