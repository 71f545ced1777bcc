"""tensor_digest: order-, format- and device-independent; sensitive to bytes, dtype and shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slmgate.runtime import tensor_digest


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"embedding.weight": torch.randn(64, 8, generator=gen),
            "classifier.weight": torch.randn(5, 8, generator=gen),
            "classifier.bias": torch.randn(5, generator=gen)}


def test_order_independent(state: dict[str, torch.Tensor]) -> None:
    reordered = dict(reversed(list(state.items())))
    assert list(reordered) != list(state)
    assert tensor_digest(reordered) == tensor_digest(state)
    assert len(tensor_digest(state)) == 64


def test_one_byte_changes_the_digest(state: dict[str, torch.Tensor]) -> None:
    before = tensor_digest(state)
    tampered = {k: v.clone() for k, v in state.items()}
    tampered["classifier.bias"].view(torch.uint8)[7] ^= 1
    assert tensor_digest(tampered) != before


def test_dtype_and_shape_are_part_of_the_digest(state: dict[str, torch.Tensor]) -> None:
    before = tensor_digest(state)
    assert tensor_digest({**state, "classifier.bias": state["classifier.bias"].double()}) != before
    assert tensor_digest({**state, "classifier.bias": state["classifier.bias"].half()}) != before
    reshaped = {**state, "classifier.weight": state["classifier.weight"].reshape(8, 5)}
    assert tensor_digest(reshaped) != before


def test_names_are_part_of_the_digest(state: dict[str, torch.Tensor]) -> None:
    renamed = {("head." + k if k.startswith("classifier") else k): v for k, v in state.items()}
    assert tensor_digest(renamed) != tensor_digest(state)
    ab = {"a": torch.zeros(2, dtype=torch.uint8), "b": torch.zeros(1, dtype=torch.uint8)}
    ab_shifted = {"a": torch.zeros(1, dtype=torch.uint8), "b": torch.zeros(2, dtype=torch.uint8)}
    assert tensor_digest(ab) != tensor_digest(ab_shifted)


def test_safetensors_and_torch_save_agree(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    save_file(state, str(tmp_path / "model.safetensors"))
    torch.save(state, tmp_path / "pytorch_model.bin")
    from_safetensors = load_file(str(tmp_path / "model.safetensors"))
    from_bin = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    assert tensor_digest(from_safetensors) == tensor_digest(from_bin) == tensor_digest(state)


def test_layout_does_not_matter(state: dict[str, torch.Tensor]) -> None:
    transposed = state["classifier.weight"].t().contiguous().t()
    assert not transposed.is_contiguous()
    assert tensor_digest({**state, "classifier.weight": transposed}) == tensor_digest(state)


def test_non_tensors_are_refused() -> None:
    with pytest.raises(TypeError, match=r"not a torch\.Tensor"):
        tensor_digest({"w": [1.0, 2.0]})  # type: ignore[dict-item]


def test_a_model_converted_to_pytorch_bin_keeps_its_tensor_digest(
        demo_models: dict[str, Path], tmp_path: Path) -> None:
    """safetensors -> pytorch_model.bin: other files, other root digest, the same tensors."""
    import shutil

    from safetensors.torch import load_file, save_file

    from slmgate.evidence import hash_model_dir
    from slmgate.runtime import capture_serving_config, load_model

    source = demo_models["candidate"]
    converted = tmp_path / "converted"
    converted.mkdir()
    shutil.copy(source / "config.json", converted / "config.json")
    torch.save(load_file(str(source / "model.safetensors")), converted / "pytorch_model.bin")
    assert not (converted / "model.safetensors").exists()
    assert hash_model_dir(converted).root_digest != hash_model_dir(source).root_digest
    original = tensor_digest(load_model(source).state_dict())
    assert tensor_digest(load_model(converted).state_dict()) == original
    captured = capture_serving_config(converted, warmup=0, iterations=1)
    assert captured["tensor_digest"] == {"sha256": original}

    back = tmp_path / "back"  # and back to safetensors
    back.mkdir()
    shutil.copy(source / "config.json", back / "config.json")
    save_file(torch.load(converted / "pytorch_model.bin", weights_only=True),
              str(back / "model.safetensors"))
    assert tensor_digest(load_model(back).state_dict()) == original

    state = torch.load(converted / "pytorch_model.bin", weights_only=True)
    state["classifier.bias"][0] += 1e-3  # one value
    torch.save(state, converted / "pytorch_model.bin")
    assert tensor_digest(load_model(converted).state_dict()) != original
