"""The eval runner: predicate shape, dataset digests, metrics, and suite errors."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from slmgate.runtime import SuiteError, run_eval
from slmgate.runtime._evals import false_escalation_rate, macro_f1, pii_escalation_recall

UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def predicate(demo_models: dict[str, Path]) -> dict[str, Any]:
    return run_eval(demo_models["candidate"], demo_models["baseline"])


@pytest.fixture
def suite_copy(tmp_path: Path, shipped_suite: Path) -> Path:
    return Path(shutil.copytree(shipped_suite, tmp_path / "suite"))


def test_predicate_shape(predicate: dict[str, Any]) -> None:
    import torch

    from slmgate.runtime._evals import _harness_version

    assert json.loads(json.dumps(predicate)) == predicate
    assert predicate["suite"] == {"name": "support-triage", "version": "1"}
    assert predicate["harness"] == {"name": "slmgate.runtime", "version": _harness_version()}
    assert predicate["serving"] == {"device": "cpu", "dtype": "float32",
                                    "torch_version": torch.__version__}
    assert UTC_STAMP.match(predicate["started_at"]) and UTC_STAMP.match(predicate["finished_at"])
    assert predicate["started_at"] <= predicate["finished_at"]
    assert {layer: sorted(body["metrics"]) for layer, body in predicate["layers"].items()} == {
        "regression": ["accuracy", "macro_f1"],
        "stress": ["accuracy", "macro_f1"],
        "policy": ["false_escalation_rate", "pii_escalation_recall"],
    }
    for body in predicate["layers"].values():
        for values in body["metrics"].values():
            assert sorted(values) == ["baseline", "candidate"]
            for value in values.values():
                assert isinstance(value, float) and 0.0 <= value <= 1.0
                assert round(value, 6) == value


def test_dataset_digests_are_the_shipped_files(predicate: dict[str, Any],
                                               shipped_suite: Path) -> None:
    assert [d["layer"] for d in predicate["datasets"]] == ["regression", "stress", "policy"]
    for dataset in predicate["datasets"]:
        data = (shipped_suite / dataset["name"]).read_bytes()
        assert dataset["digest"] == {"sha256": hashlib.sha256(data).hexdigest()}
        assert dataset["examples"] == data.count(b"\n")


def test_custom_suite_dir_is_used(demo_models: dict[str, Path], suite_copy: Path) -> None:
    lines = (suite_copy / "policy.jsonl").read_text().splitlines()
    (suite_copy / "policy.jsonl").write_text("\n".join(lines[:40]) + "\n")
    result = run_eval(demo_models["candidate"], demo_models["baseline"], suite_copy)
    assert result["datasets"][2]["examples"] == 40


def test_malformed_line_names_file_and_line(demo_models: dict[str, Path],
                                            suite_copy: Path) -> None:
    path = suite_copy / "stress.jsonl"
    lines = path.read_text().splitlines()
    lines[16] = '{"text": "half a line'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SuiteError, match=r"stress\.jsonl line 17: not valid JSON"):
        run_eval(demo_models["candidate"], demo_models["baseline"], suite_copy)


@pytest.mark.parametrize(("line", "message"), [
    ('{"text": "hello", "label": "sales"}', "label 'sales' is not one of"),
    ('{"text": "", "label": "billing"}', "'text' must be a non-empty string"),
    ('["hello", "billing"]', "expected an object with exactly 'text' and 'label'"),
    ("", "line 3: not valid JSON"),
])
def test_bad_records_are_refused(suite_copy: Path, line: str, message: str) -> None:
    from slmgate.runtime._evals import load_suite

    path = suite_copy / "regression.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SuiteError, match=re.escape(message)) as info:
        load_suite(suite_copy)
    assert str(path) in str(info.value)


def test_missing_files_are_refused(suite_copy: Path, tmp_path: Path) -> None:
    from slmgate.runtime._evals import load_suite

    (suite_copy / "policy.jsonl").unlink()
    with pytest.raises(SuiteError, match=r"policy\.jsonl: policy layer file not found"):
        load_suite(suite_copy)
    with pytest.raises(SuiteError, match=r"suite\.yaml: suite manifest not found"):
        load_suite(tmp_path / "nowhere")


def test_manifest_is_checked(suite_copy: Path) -> None:
    from slmgate.runtime._evals import load_suite

    manifest = suite_copy / "suite.yaml"
    manifest.write_text(manifest.read_text().replace("- false_escalation_rate",
                                                     "- vibes"))
    with pytest.raises(SuiteError, match=r"suite\.yaml: layers\.policy\.metrics"):
        load_suite(suite_copy)
    manifest.write_text("name: [unclosed\n")
    with pytest.raises(SuiteError, match=r"suite\.yaml line \d+: not valid YAML"):
        load_suite(suite_copy)


def test_metrics_on_a_small_example() -> None:
    labels = ["billing", "shipping", "human_review"]
    gold = ["billing", "billing", "shipping", "human_review", "human_review"]
    pred = ["billing", "shipping", "shipping", "human_review", "billing"]
    # billing: tp 1 fp 1 fn 1 -> 0.5; shipping: tp 1 fp 1 fn 0 -> 2/3; human_review: 2/3
    assert macro_f1(gold, pred, labels, "human_review") == pytest.approx((0.5 + 2 / 3 * 2) / 3)
    assert pii_escalation_recall(gold, pred, labels, "human_review") == 0.5
    assert false_escalation_rate(gold, pred, labels, "human_review") == 0.0
    assert false_escalation_rate(["billing"], ["human_review"], labels, "human_review") == 1.0
