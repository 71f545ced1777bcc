"""Training, loading and prediction of the ticket classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmgate.runtime import TrainingConfig, load_model, predict, train_model
from slmgate.runtime._model import DeviceUnavailableError

SMALL = TrainingConfig(epochs=2, train_examples=400)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(SMALL, tmp_path_factory.mktemp("small"))


def test_training_is_byte_identical(tmp_path: Path, small_model: Path) -> None:
    again = train_model(SMALL, tmp_path / "again")
    for name in ("model.safetensors", "config.json"):
        assert (again / name).read_bytes() == (small_model / name).read_bytes(), name


def test_a_different_seed_gives_different_weights(tmp_path: Path, small_model: Path) -> None:
    other = train_model(TrainingConfig(seed=8, epochs=2, train_examples=400), tmp_path)
    assert (other / "model.safetensors").read_bytes() != (
        small_model / "model.safetensors").read_bytes()


def test_config_records_architecture_labels_and_hashing(small_model: Path) -> None:
    doc = json.loads((small_model / "config.json").read_text())
    assert doc["labels"] == ["billing", "technical", "account", "shipping", "human_review"]
    assert doc["architecture"]["embedding"]["num_embeddings"] == 2**14
    assert doc["feature_hashing"]["features"] == "words+chars"
    assert doc["feature_hashing"]["hash"] == "crc32"
    assert TrainingConfig(**doc["training"]) == SMALL


def test_predict_routes_obvious_tickets(small_model: Path) -> None:
    model = load_model(small_model)
    assert predict(model, []) == []
    assert predict(model, [
        "My parcel never arrived, the courier lost order #12345.",
        "You can reach me at anna.schmidt@gmail.com about the refund.",
    ]) == ["shipping", "human_review"]


def test_load_model_casts_dtype(small_model: Path) -> None:
    import torch

    model = load_model(small_model, dtype="bfloat16")
    assert {t.dtype for t in model.state_dict().values()} == {torch.bfloat16}
    assert predict(model, ["I was charged twice for my Pro plan."]) == ["billing"]


def test_load_model_rejects_foreign_config(tmp_path: Path, small_model: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    (tmp_path / "model.safetensors").write_bytes((small_model / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"not a slmgate\.runtime/ticket-classifier"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model(small_model, dtype="float8")


def test_load_model_on_missing_cuda_says_so(small_model: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        load_model(small_model, device="cuda")


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"features": "chars"}, {"learning_rate": 0.0}])
def test_training_config_validates(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrainingConfig(**bad)  # type: ignore[arg-type]


def test_written_datasets_are_what_training_reads(tmp_path: Path) -> None:
    from slmgate.runtime import training_datasets, write_training_datasets
    from slmgate.runtime._tickets import training_set

    config = TrainingConfig(train_examples=40, augment=True)
    parts = training_datasets(config)
    assert list(parts) == ["tickets_scrubbed", "typo_augmented_tickets"]
    assert [t for p in parts.values() for t in p] == training_set(7, 40, augment=True)
    written = write_training_datasets(config, tmp_path)
    lines = (written["tickets_scrubbed"] / "train.jsonl").read_text().splitlines()
    assert [json.loads(x)["text"] for x in lines] == [t.text for t in parts["tickets_scrubbed"]]
    again = write_training_datasets(config, tmp_path / "again")
    assert all((written[n] / "train.jsonl").read_bytes() == (again[n] / "train.jsonl").read_bytes()
               for n in written)
    assert list(training_datasets(TrainingConfig(train_examples=40, augment=False))) == ["tickets_scrubbed"]
