"""The torch-side evidence producers: demo model training (and the datasets it reads), the
three-layer eval runner, serving-config capture and tensor digests, for the support-ticket
triage workflow; and the importers of eval results made elsewhere (lm-evaluation-harness,
model-card model-index).

Importing this package does not import torch; each function imports it when called. The
importers load on first use, so training and capture need neither slmgate.evidence nor its
cryptography.
"""

from typing import Any

from ._demo_models import train_demo_models
from ._evals import SuiteError, run_eval
from ._model import (
    DeviceUnavailableError,
    TrainingConfig,
    load_model,
    predict,
    train_model,
    training_datasets,
    write_training_datasets,
)
from ._serving import capture_serving_config
from ._tensors import tensor_digest

__all__ = [
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


def __getattr__(name: str) -> Any:
    if name == "import_lm_eval":
        from . import _importers

        return _importers.import_lm_eval
    if name == "import_model_index":
        from . import _model_cards

        return _model_cards.import_model_index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
