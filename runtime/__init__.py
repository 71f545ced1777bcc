"""The torch-side evidence producers: demo model training, the three-layer eval runner,
serving-config capture and tensor digests, for the support-ticket triage workflow.

Importing this package does not import torch; each function imports it when called.
"""

from ._demo_models import train_demo_models
from ._evals import SuiteError, run_eval
from ._model import TrainingConfig, load_model, predict, train_model
from ._serving import capture_serving_config
from ._tensors import tensor_digest

__all__ = [
    "SuiteError",
    "TrainingConfig",
    "capture_serving_config",
    "load_model",
    "predict",
    "run_eval",
    "tensor_digest",
    "train_demo_models",
    "train_model",
]
