"""The ticket classifier: hashed features → ``nn.EmbeddingBag`` (mean) → ``nn.Linear``.

:func:`train_model` writes ``model.safetensors`` and ``config.json``; both are byte-identical
for the same :class:`TrainingConfig` (every seed fixed, deterministic algorithms, one
thread). :func:`load_model` reads them back onto a device and dtype, :func:`predict` routes
tickets. torch is imported inside functions only.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._features import FeatureHashing, FeatureSet, featurize_batch
from ._labels import LABELS

if TYPE_CHECKING:
    import torch

    from ._tickets import Ticket

MODEL_FORMAT = "slmgate.runtime/ticket-classifier"
MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
TORCH_WEIGHTS_FILE = "pytorch_model.bin"  # the same state dict written by torch.save
CONFIG_FILE = "config.json"
DTYPES = ("float32", "float16", "bfloat16")


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used by this torch build or on this machine."""


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a trained model; recorded in its ``config.json``.

    Round-trip rule: ``TrainingConfig(**json.loads(config_json)["training"]) == config``.
    """

    seed: int = 7
    epochs: int = 6
    features: FeatureSet = "words+chars"
    augment: bool = True
    train_examples: int = 2000
    num_buckets: int = 2**14
    char_ngram: int = 3
    embedding_dim: int = 32
    learning_rate: float = 0.02
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("epochs", "train_examples", "embedding_dim", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainingConfig.{name} must be at least 1, "
                                 f"got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"TrainingConfig.learning_rate must be positive, "
                             f"got {self.learning_rate}")
        _ = self.hashing  # validates features, num_buckets and char_ngram

    @property
    def hashing(self) -> FeatureHashing:
        """The feature hashing this configuration trains with."""
        return FeatureHashing(self.features, self.num_buckets, self.char_ngram)


@dataclass(frozen=True)
class TriageModel:
    """A loaded classifier: its network, label list and feature hashing, on one device/dtype."""

    network: torch.nn.ModuleDict
    labels: tuple[str, ...]
    hashing: FeatureHashing
    device: str
    dtype: str

    def logits(self, ids: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores for packed ids with ``offsets``, or for a padded 2-D id tensor."""
        scores: torch.Tensor = self.network["classifier"](self.network["embedding"](ids, offsets))
        return scores

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights as loaded (on this model's device and dtype)."""
        return dict(self.network.state_dict())


def _build_network(num_buckets: int, embedding_dim: int, num_labels: int) -> torch.nn.ModuleDict:
    import torch

    embedding = torch.nn.EmbeddingBag(num_buckets, embedding_dim, mode="mean", padding_idx=0)
    torch.nn.init.normal_(embedding.weight, std=0.1)
    with torch.no_grad():
        embedding.weight[0].zero_()
    return torch.nn.ModuleDict(
        {"embedding": embedding, "classifier": torch.nn.Linear(embedding_dim, num_labels)})


def _pack(rows: Sequence[Sequence[int]], device: str = "cpu"
          ) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    offsets, total = [], 0
    for row in rows:
        offsets.append(total)
        total += len(row)
    flat = [i for row in rows for i in row]
    return (torch.tensor(flat, dtype=torch.long, device=device),
            torch.tensor(offsets, dtype=torch.long, device=device))


@contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic algorithms and one thread; restore all on exit."""
    import torch

    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    rng_state = torch.random.get_rng_state()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(rng_state)
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def _config_document(config: TrainingConfig) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": {
            "type": "hashed-embeddingbag-linear",
            "embedding": {"num_embeddings": config.num_buckets,
                          "embedding_dim": config.embedding_dim,
                          "mode": "mean", "padding_idx": 0},
            "classifier": {"in_features": config.embedding_dim, "out_features": len(LABELS)},
        },
        "dtype": "float32",
        "labels": list(LABELS),
        "feature_hashing": config.hashing.to_json(),
        "training": asdict(config),
        "objective": {"optimizer": "adam", "loss": "cross_entropy"},
    }


# The datasets a training run reads, by their ids in the default bundle's purposes.yaml: the
# scrubbed tickets, and (with ``augment``) their typo/noise perturbations, a derivative flow.
SCRUBBED_DATASET = "tickets_scrubbed"
AUGMENTED_DATASET = "typo_augmented_tickets"


def training_datasets(config: TrainingConfig) -> dict[str, list[Ticket]]:
    """The records ``train_model`` trains on, per dataset, in training order."""
    from ._tickets import training_set  # not at import: `python -m ..._tickets` stays clean

    tickets = training_set(config.seed, config.train_examples, augment=config.augment)
    if not config.augment:
        return {SCRUBBED_DATASET: tickets}
    half = len(tickets) // 2  # augment appends one perturbation per ticket
    return {SCRUBBED_DATASET: tickets[:half], AUGMENTED_DATASET: tickets[half:]}


def write_training_datasets(config: TrainingConfig, out_dir: str | Path) -> dict[str, Path]:
    """Write each dataset ``train_model(config)`` reads as ``out_dir/<dataset>/train.jsonl``
    (one ``{"label", "text"}`` line per record): the folders a data card's content manifest
    hashes. Returns dataset id -> folder; the same config gives the same bytes."""
    from ._tickets import iter_lines

    written: dict[str, Path] = {}
    for name, tickets in training_datasets(config).items():
        folder = Path(out_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "train.jsonl").open("w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(iter_lines(tickets))
        written[name] = folder
    return written


def train_model(config: TrainingConfig, out_dir: str | Path) -> Path:
    """Train on synthetic tickets and write ``model.safetensors`` + ``config.json``.

    Returns ``out_dir``. The same ``config`` gives byte-identical files.
    """
    import torch
    from safetensors.torch import save_file

    tickets = [t for part in training_datasets(config).values() for t in part]
    index = {label: i for i, label in enumerate(LABELS)}
    rows = featurize_batch([t.text for t in tickets], config.hashing)
    targets = [index[t.label] for t in tickets]

    with _deterministic(config.seed):
        network = _build_network(config.num_buckets, config.embedding_dim, len(LABELS))
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, fused=True)
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.Generator().manual_seed(config.seed)
        network.train()
        for _ in range(config.epochs):
            perm = torch.randperm(len(rows), generator=order).tolist()
            for start in range(0, len(perm), config.batch_size):
                batch = perm[start:start + config.batch_size]
                ids, offsets = _pack([rows[i] for i in batch])
                logits = network["classifier"](network["embedding"](ids, offsets))
                loss = loss_fn(logits, torch.tensor([targets[i] for i in batch]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(
        json.dumps(_config_document(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tensors = {name: t.detach().contiguous() for name, t in network.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    shutil.copymode(out / CONFIG_FILE, out / WEIGHTS_FILE)  # save_file leaves it owner-only
    return out


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """Parse ``device``/``dtype``; raise :class:`DeviceUnavailableError` if unusable here."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"not a torch device: {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r} requested but CUDA is not available "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {device!r} requested but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible")
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"device type {dev.type!r} is not supported; "
                                     "use 'cpu' or 'cuda[:N]'")
    return dev, getattr(torch, dtype)


def _read_weights(root: Path) -> dict[str, torch.Tensor]:
    """The state dict from ``model.safetensors``, or else from ``pytorch_model.bin`` (loaded
    with ``weights_only=True``: tensors only, no pickled code)."""
    import torch
    from safetensors.torch import load_file

    if (root / WEIGHTS_FILE).exists() or not (root / TORCH_WEIGHTS_FILE).exists():
        return load_file(str(root / WEIGHTS_FILE), device="cpu")
    state = torch.load(root / TORCH_WEIGHTS_FILE, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{root / TORCH_WEIGHTS_FILE}: not a state dict")
    return state


def load_model(model_dir: str | Path, device: str = "cpu", dtype: str = "float32"
               ) -> TriageModel:
    """Load a model directory written by :func:`train_model` onto ``device`` as ``dtype``;
    its weights may also be a ``pytorch_model.bin`` converted from the safetensors file."""
    import torch

    dev, torch_dtype = resolve_device(device, dtype)
    root = Path(model_dir)
    config_path = root / CONFIG_FILE
    try:
        doc = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{config_path}: no model config") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path}: not valid JSON: {exc}") from exc
    if doc.get("format") != MODEL_FORMAT or doc.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"{config_path}: not a {MODEL_FORMAT} v{MODEL_FORMAT_VERSION} model "
                         f"config (format={doc.get('format')!r}, "
                         f"format_version={doc.get('format_version')!r})")
    emb = doc["architecture"]["embedding"]
    labels = tuple(doc["labels"])
    hashing = FeatureHashing.from_json(doc["feature_hashing"])
    if emb["num_embeddings"] != hashing.num_buckets:
        raise ValueError(f"{config_path}: embedding rows ({emb['num_embeddings']}) differ from "
                         f"feature buckets ({hashing.num_buckets})")
    with torch.random.fork_rng(devices=[]):  # the throwaway init must not move the caller's RNG
        network = _build_network(emb["num_embeddings"], emb["embedding_dim"], len(labels))
    network.load_state_dict(_read_weights(root), strict=True)
    network.to(device=dev, dtype=torch_dtype)
    network.eval()
    return TriageModel(network, labels, hashing, str(dev), dtype)


def predict(model: TriageModel, texts: Sequence[str], *, batch_size: int = 512) -> list[str]:
    """The queue label for each ticket text, in order."""
    import torch

    out: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = featurize_batch(texts[start:start + batch_size], model.hashing)
            ids, offsets = _pack(rows, model.device)
            best = model.logits(ids, offsets).argmax(dim=1).tolist()
            out.extend(model.labels[i] for i in best)
    return out
