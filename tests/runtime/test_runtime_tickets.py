"""The synthetic ticket generator and the golden suite it wrote into the package."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from slmgate.runtime import _tickets

PII = {
    "email": re.compile(r"[\w.]+@[\w-]+\.[\w.]+"),
    "phone": re.compile(r"\+?\(?\d[\d ()-]{8,}\d"),
}


def _lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_shipped_suite_is_what_the_generator_writes(tmp_path: Path, shipped_suite: Path) -> None:
    out = subprocess.run([sys.executable, "-W", "error", "-m", "slmgate.runtime._tickets",
                          str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stderr == ""
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["policy.jsonl", "regression.jsonl", "stress.jsonl", "suite.yaml"]
    for name in names:
        assert (tmp_path / name).read_bytes() == (shipped_suite / name).read_bytes(), name


def test_layer_sizes_and_labels(shipped_suite: Path) -> None:
    for layer, size in _tickets.SUITE_SIZES.items():
        rows = _lines(shipped_suite / f"{layer}.jsonl")
        assert len(rows) == size
        assert all(set(r) == {"text", "label"} and r["label"] in _tickets.LABELS for r in rows)
        assert len({r["text"] for r in rows}) == size  # no duplicates within a layer
    policy = Counter(r["label"] for r in _lines(shipped_suite / "policy.jsonl"))
    assert policy["human_review"] == 150


def test_policy_layer_has_every_pii_kind_and_near_misses() -> None:
    kinds = Counter(t.kind for t in _tickets.policy_set())
    assert kinds == {"email": 30, "phone": 30, "card": 30, "iban": 30, "gdpr": 30,
                     "near_miss": 150}
    for ticket in _tickets.policy_set():
        if ticket.kind in PII:
            assert PII[ticket.kind].search(ticket.text), ticket.text
        if ticket.kind == "near_miss":
            assert not PII["email"].search(ticket.text), ticket.text


def test_training_data_is_disjoint_from_the_golden_suite(shipped_suite: Path) -> None:
    golden = {r["text"] for layer in ("regression", "stress", "policy")
              for r in _lines(shipped_suite / f"{layer}.jsonl")}
    training = _tickets.training_set(7, 1500, augment=True)
    assert len(training) == 3000
    assert not golden & {t.text for t in training}


def test_generation_is_deterministic_per_seed() -> None:
    assert _tickets.training_set(3, 50) == _tickets.training_set(3, 50)
    assert _tickets.training_set(3, 50) != _tickets.training_set(4, 50)


def test_perturbations_change_text_but_keep_numbers() -> None:
    rng = random.Random(0)
    text = "My order #48213 still has not arrived, please check the tracking information."
    typo = _tickets.add_typos(text, rng, rate=1.0)
    assert typo != text and "#48213" in typo
    assert _tickets.truncate(text, rng) != text
    assert _tickets.add_noise(text, rng) != text
    assert " ".join(_tickets.mangle_whitespace(text, rng).split()) == text
    assert _tickets.random_casing(text, rng).lower() == text.lower()
    assert _tickets.perturb(text, rng) != text
