"""Tensor digests: one sha256 over a state dict's names, dtypes, shapes and bytes.

The digest identifies the weights as a model sees them, independent of file format (the same
tensors saved as safetensors or with ``torch.save`` give the same digest), of dict order and of
device. A dtype change is a different model, so tensors are hashed in the dtype they have.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DIGEST_DOMAIN = b"slmgate.runtime/tensor-digest/v1"


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _framed(data: bytes) -> bytes:
    return _u64(len(data)) + data


def tensor_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 of a state dict, order-independent and unambiguous.

    Encoding, all integers unsigned 64-bit big-endian, every string length-prefixed UTF-8:
    the domain ``slmgate.runtime/tensor-digest/v1``, the tensor count, then per tensor in
    order of its name's UTF-8 bytes: name, dtype (``float32``, ``bfloat16``, ...), rank, each
    dimension, and the length-prefixed raw bytes of the contiguous CPU tensor, little-endian.
    """
    import torch

    hasher = hashlib.sha256(_framed(DIGEST_DOMAIN) + _u64(len(state_dict)))
    for name in sorted(state_dict, key=lambda n: n.encode("utf-8")):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name!r} is a {type(tensor).__name__}, not a torch.Tensor")
        if tensor.layout != torch.strided or tensor.is_quantized:
            raise TypeError(f"{name!r}: only dense, unquantized tensors can be digested")
        cpu = tensor.detach().to("cpu").contiguous()
        raw = cpu.reshape(-1).view(torch.uint8)
        if sys.byteorder == "big" and cpu.element_size() > 1:
            raw = raw.reshape(-1, cpu.element_size()).flip(-1).reshape(-1)
        hasher.update(_framed(name.encode("utf-8")))
        hasher.update(_framed(str(cpu.dtype).removeprefix("torch.").encode("ascii")))
        hasher.update(_u64(cpu.dim()) + b"".join(_u64(d) for d in cpu.shape))
        hasher.update(_u64(raw.numel()))
        hasher.update(raw.numpy().tobytes())
    return hasher.hexdigest()
