"""Shared fixtures for the runtime tests: the demo models, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from slmgate.runtime import train_demo_models

    return train_demo_models(tmp_path_factory.mktemp("demo-models"))


@pytest.fixture(scope="session")
def shipped_suite() -> Path:
    from slmgate.runtime._evals import default_suite_dir

    return default_suite_dir()
