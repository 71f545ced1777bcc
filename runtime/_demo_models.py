"""Three demo models for the promotion walk-through: a baseline, a better candidate, and a
candidate that regressed on messy inputs while still looking fine on the regression layer.
"""

from __future__ import annotations

from pathlib import Path

from ._model import TrainingConfig, train_model

DEMO_CONFIGS: dict[str, TrainingConfig] = {
    # The production model: word and character features, a short run, no augmentation.
    "baseline": TrainingConfig(epochs=3, features="words+chars", augment=False,
                               train_examples=1000),
    # Its retrain: more epochs on data augmented with stress perturbations.
    "candidate": TrainingConfig(epochs=6, features="words+chars", augment=True),
    # A retrain that dropped character features and augmentation: typos break it.
    "regressed": TrainingConfig(epochs=6, features="words", augment=False),
}


def train_demo_models(out_dir: str | Path) -> dict[str, Path]:
    """Train the ``baseline``, ``candidate`` and ``regressed`` models under ``out_dir``.

    Each lands in ``out_dir/<name>/`` (``model.safetensors`` + ``config.json``); the result
    maps each name to its directory. Deterministic: the same bytes on every run.
    """
    root = Path(out_dir)
    return {name: train_model(config, root / name) for name, config in DEMO_CONFIGS.items()}
