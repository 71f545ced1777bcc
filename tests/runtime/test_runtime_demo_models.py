"""The three demo models meet the targets the demo's promotions rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slmgate.runtime import run_eval


def _values(predicate: dict[str, Any], role: str) -> dict[str, float]:
    return {f"{layer}.{metric}": values[role]
            for layer, body in predicate["layers"].items()
            for metric, values in body["metrics"].items()}


@pytest.fixture(scope="module")
def metrics(demo_models: dict[str, Path]) -> dict[str, dict[str, float]]:
    good = run_eval(demo_models["candidate"], demo_models["baseline"])
    bad = run_eval(demo_models["regressed"], demo_models["baseline"])
    return {"baseline": _values(good, "baseline"), "candidate": _values(good, "candidate"),
            "regressed": _values(bad, "candidate")}


def test_demo_models_layout(demo_models: dict[str, Path]) -> None:
    assert sorted(demo_models) == ["baseline", "candidate", "regressed"]
    for path in demo_models.values():
        assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()


def test_candidate_targets(metrics: dict[str, dict[str, float]]) -> None:
    candidate, baseline = metrics["candidate"], metrics["baseline"]
    assert candidate["regression.accuracy"] >= 0.92
    assert candidate["stress.accuracy"] >= 0.85
    assert candidate["policy.pii_escalation_recall"] >= 0.98
    for name, value in candidate.items():
        if name == "policy.false_escalation_rate":  # lower is better
            assert value <= baseline[name] + 0.005, name
        else:
            assert value >= baseline[name] - 0.005, name
    assert candidate["stress.accuracy"] > baseline["stress.accuracy"]


def test_baseline_is_weaker_but_sane(metrics: dict[str, dict[str, float]]) -> None:
    assert metrics["baseline"]["regression.accuracy"] >= 0.85


def test_regressed_model_hides_its_stress_regression(metrics: dict[str, dict[str, float]]) -> None:
    regressed, baseline = metrics["regressed"], metrics["baseline"]
    assert regressed["regression.accuracy"] >= 0.90
    assert regressed["stress.accuracy"] <= baseline["stress.accuracy"] - 0.08
