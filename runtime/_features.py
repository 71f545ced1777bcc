"""Hashed text features for the ticket classifier: word unigrams and character trigrams.

Text is lower-cased, every ASCII digit is folded to ``0`` (so an order number and a phone
number are told apart by their shape, not their value) and each feature string is hashed
with CRC-32 into ``num_buckets - 1`` buckets; bucket 0 is reserved for padding. No torch
here: the same features feed training, evaluation and serving.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

FeatureSet = Literal["words", "words+chars"]

HASH_NAME = "crc32"
PADDING_INDEX = 0
_DIGITS = str.maketrans("0123456789", "0000000000")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class FeatureHashing:
    """How a ticket text becomes bucket ids; written verbatim into a model's config.json.

    Round-trip rule: ``FeatureHashing.from_json(h.to_json()) == h``.
    """

    features: FeatureSet = "words+chars"
    num_buckets: int = 2**14
    char_ngram: int = 3

    def __post_init__(self) -> None:
        if self.features not in ("words", "words+chars"):
            raise ValueError(f"features must be 'words' or 'words+chars', got {self.features!r}")
        if self.num_buckets < 2:
            raise ValueError(f"num_buckets must be at least 2, got {self.num_buckets}")
        if self.char_ngram < 1:
            raise ValueError(f"char_ngram must be at least 1, got {self.char_ngram}")

    def to_json(self) -> dict[str, Any]:
        """The hashing parameters, including the fixed ones a reader needs to reproduce them."""
        return {
            **asdict(self),
            "hash": HASH_NAME,
            "padding_index": PADDING_INDEX,
            "lowercase": True,
            "digit_folding": "0",
            "word_prefix": "w:",
            "char_prefix": "c:",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureHashing:
        """Parse :meth:`to_json` output; refuse parameters this implementation cannot honour."""
        fixed = cls().to_json()
        for key in ("hash", "padding_index", "lowercase", "digit_folding", "word_prefix",
                    "char_prefix"):
            if data.get(key) != fixed[key]:
                raise ValueError(
                    f"unsupported feature hashing: {key}={data.get(key)!r}, "
                    f"this runtime implements {key}={fixed[key]!r}"
                )
        return cls(
            features=data["features"],
            num_buckets=int(data["num_buckets"]),
            char_ngram=int(data["char_ngram"]),
        )


def normalize(text: str) -> str:
    """Lower-case, fold digits to ``0`` and collapse whitespace runs to one space."""
    return _SPACE.sub(" ", text.lower().translate(_DIGITS)).strip()


def feature_strings(text: str, hashing: FeatureHashing) -> list[str]:
    """The prefixed feature strings of ``text``, in text order (words first, then n-grams)."""
    norm = normalize(text)
    out = [f"w:{token}" for token in _TOKEN.findall(norm)]
    if hashing.features == "words+chars":
        padded = f" {norm} "
        n = hashing.char_ngram
        out.extend(f"c:{padded[i:i + n]}" for i in range(len(padded) - n + 1))
    return out


def _bucket(feature: str, num_buckets: int) -> int:
    return zlib.crc32(feature.encode("utf-8")) % (num_buckets - 1) + 1


def featurize(text: str, hashing: FeatureHashing) -> list[int]:
    """Bucket ids (never the padding index) of ``text``; at least one id for any text."""
    ids = [_bucket(f, hashing.num_buckets) for f in feature_strings(text, hashing)]
    return ids or [_bucket("w:", hashing.num_buckets)]


def featurize_batch(
    texts: Iterable[str], hashing: FeatureHashing, *, pad_to: int | None = None
) -> list[list[int]]:
    """Featurize each text; with ``pad_to``, truncate or pad every row to exactly that length."""
    rows = [featurize(t, hashing) for t in texts]
    if pad_to is None:
        return rows
    if pad_to < 1:
        raise ValueError(f"pad_to must be at least 1, got {pad_to}")
    return [row[:pad_to] + [PADDING_INDEX] * (pad_to - len(row[:pad_to])) for row in rows]
