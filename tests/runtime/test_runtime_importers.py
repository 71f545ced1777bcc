"""Importers: lm-evaluation-harness results and model-card model-index into eval-result
predicates; partial runs refused with the task and its counts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from slmgate.evidence.errors import InputError
from slmgate.runtime import import_lm_eval, import_model_index
from slmgate.runtime._importers import metric_key

ASSETS = Path(__file__).parent / "assets"
LM_EVAL = ASSETS / "lm-eval-results.json"
LM_EVAL_LIMIT = ASSETS / "lm-eval-results-limit.json"
CARD = ASSETS / "model-card-README.md"


def _variant(tmp_path: Path, change: Any) -> Path:
    doc = json.loads(LM_EVAL.read_text())
    change(doc)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    return path


def test_lm_eval_metrics_layers_and_identity() -> None:
    p = import_lm_eval(LM_EVAL, layers=["gsm8k=stress"])
    assert p["layers"]["regression"]["metrics"]["arc_easy__acc_norm"] == {
        "candidate": 0.6393097643097643, "baseline": None, "task": "arc_easy",
        "metric": "acc_norm", "stderr": 0.009853512108416743}  # full precision, as read
    assert sorted(p["layers"]["stress"]["metrics"]) == [
        "gsm8k__exact_match__flexible_extract", "gsm8k__exact_match__strict_match"]
    assert p["layers"]["stress"]["metrics"]["gsm8k__exact_match__strict_match"]["metric"] == \
        "exact_match,strict-match"
    assert not any("stderr" in m for body in p["layers"].values() for m in body["metrics"])
    assert p["baseline"] is None
    assert p["harness"] == {"name": "lm-evaluation-harness", "version": "8138fd52"}
    assert p["suite"]["name"] == "arc_easy+gsm8k+hellaswag"
    assert p["finished_at"] == "2025-11-20T12:19:47Z"  # date + total_evaluation_time_seconds
    assert {t["name"]: t["examples"] for t in p["tasks"]} == {
        "arc_easy": 2376, "gsm8k": 1319, "hellaswag": 10042}
    assert {t["name"]: t["n_shot"] for t in p["tasks"]} == {"arc_easy": 0, "gsm8k": 5,
                                                            "hellaswag": 0}
    assert p["serving"]["dtype"] == "bfloat16" and p["serving"]["device"] == "cuda:0"
    assert p["source"]["file"] == LM_EVAL.name


def test_default_layer_and_unknown_tasks(tmp_path: Path) -> None:
    assert set(import_lm_eval(LM_EVAL, layers=["policy"])["layers"]) == {"policy"}
    with pytest.raises(InputError, match="not in the results: mmlu"):
        import_lm_eval(LM_EVAL, layers=["mmlu=stress"])
    with pytest.raises(InputError, match="not one of"):
        import_lm_eval(LM_EVAL, layers=["gsm8k=safety"])


def test_limit_is_refused() -> None:
    with pytest.raises(InputError, match=r"config\.limit: the run was made with limit=100\.0"):
        import_lm_eval(LM_EVAL_LIMIT)


def test_fewer_effective_samples_are_refused_naming_task_and_counts(tmp_path: Path) -> None:
    path = _variant(tmp_path, lambda d: d["n-samples"]["hellaswag"].update(effective=9000))
    with pytest.raises(InputError, match=r"n-samples\.hellaswag: task 'hellaswag' evaluated "
                                         r"9000 of 10042 samples"):
        import_lm_eval(path)


@pytest.mark.parametrize("change", [lambda d: d.pop("n-samples"),
                                    lambda d: d["n-samples"].pop("gsm8k")])
def test_missing_sample_counts_are_refused(tmp_path: Path, change: Any) -> None:
    with pytest.raises(InputError, match=r"sample counts|n-samples"):
        import_lm_eval(_variant(tmp_path, change))


def test_groups_are_imported_but_not_counted(tmp_path: Path) -> None:
    def add_group(doc: dict[str, Any]) -> None:
        doc["results"]["reasoning"] = {"alias": "reasoning", "acc,none": 0.5,
                                       "acc_stderr,none": "N/A"}
        doc["group_subtasks"]["reasoning"] = ["arc_easy", "hellaswag"]
        doc["results"]["hellaswag"]["acc,none"] = float("nan")

    p = import_lm_eval(_variant(tmp_path, add_group))
    metrics = p["layers"]["regression"]["metrics"]
    assert metrics["reasoning__acc"]["candidate"] == 0.5
    assert "hellaswag__acc" not in metrics  # NaN is not a value: the gate sees it missing
    assert "reasoning" not in {t["name"] for t in p["tasks"]}


def test_time_comes_from_the_file_or_only_then_the_option(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="carry their own date"):  # stale cannot look fresh
        import_lm_eval(LM_EVAL, evaluated_at="2026-11-01T10:00:00+02:00")
    undated = _variant(tmp_path, lambda d: d.pop("date"))
    at = import_lm_eval(undated, evaluated_at="2026-11-01T10:00:00+02:00")
    assert at["finished_at"] == "2026-11-01T08:00:00Z"
    with pytest.raises(InputError, match="no date"):
        import_lm_eval(undated)
    with pytest.raises(InputError, match="RFC 3339"):
        import_lm_eval(undated, evaluated_at="yesterday")


def test_not_lm_eval_results(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="no results"):
        import_lm_eval(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(InputError, match="not JSON"):
        import_lm_eval(tmp_path / "y.json")


def test_model_index() -> None:
    p = import_model_index(CARD, evaluated_at="2026-11-01T00:00:00Z",
                           layers=["hellaswag:validation=stress"])
    assert p["layers"]["regression"]["metrics"] == {
        "acme_support_tickets_routing_test__accuracy": {
            "candidate": 0.942, "baseline": None, "task": "acme/support-tickets[routing]:test",
            "metric": "accuracy", "verified": False},
        "acme_support_tickets_routing_test__f1": {
            "candidate": 0.931, "baseline": None, "task": "acme/support-tickets[routing]:test",
            "metric": "f1", "args": {"average": "macro"}, "verified": False}}
    assert p["layers"]["stress"]["metrics"]["hellaswag_validation__acc_norm"]["candidate"] == 53.4
    assert p["suite"]["name"] == "model-index:support-triage-slm"
    assert p["baseline"] is None and p["finished_at"] == "2026-11-01T00:00:00Z"


def test_model_index_refusals(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not say when"):
        import_model_index(CARD)
    text = CARD.read_text()
    two = text.replace("model-index:\n", "model-index:\n- name: other\n  results: []\n", 1)
    (tmp_path / "two.md").write_text(two)
    with pytest.raises(InputError, match="say which with --model"):
        import_model_index(tmp_path / "two.md", evaluated_at="2026-11-01T00:00:00Z")
    assert import_model_index(tmp_path / "two.md", model="support-triage-slm",
                              evaluated_at="2026-11-01T00:00:00Z")["layers"]
    (tmp_path / "plain.md").write_text("# a card without front matter\n")
    with pytest.raises(InputError, match="no YAML front matter"):
        import_model_index(tmp_path / "plain.md", evaluated_at="2026-11-01T00:00:00Z")
    (tmp_path / "bad.md").write_text(text.replace("value: 0.942", "value: high"))
    with pytest.raises(InputError, match=r"metrics\[0\]"):
        import_model_index(tmp_path / "bad.md", evaluated_at="2026-11-01T00:00:00Z")


def test_metric_keys_fit_the_schema_alphabet() -> None:
    assert metric_key("gsm8k", "exact_match,strict-match") == "gsm8k__exact_match__strict_match"
    assert metric_key("arc_easy", "acc") == "arc_easy__acc"
    assert metric_key("2wiki", "f1") == "m_2wiki__f1"


def test_predicates_fit_the_schema_once_baselines_may_be_null() -> None:
    """Everything but the null baselines already fits the published eval-result schema."""
    from slmgate.evidence import predicate_schema

    schema = copy.deepcopy(predicate_schema("eval-result"))
    schema["properties"]["baseline"]["type"] = ["object", "null"]
    metric = schema["properties"]["layers"]["additionalProperties"]["properties"]["metrics"]
    metric["additionalProperties"]["properties"]["baseline"]["type"] = ["number", "null"]
    for predicate in (import_lm_eval(LM_EVAL, layers=["gsm8k=stress"]),
                      import_model_index(CARD, evaluated_at="2026-11-01T00:00:00Z")):
        jsonschema.Draft202012Validator(schema).validate(predicate)


MULTI = ASSETS / "model-card-multisplit-README.md"
MULTI_BASE = ASSETS / "model-card-multisplit-baseline-README.md"
WHEN = "2026-11-01T00:00:00Z"


def test_model_index_splits_are_separate_metrics_with_stderr_and_shots() -> None:
    p = import_model_index(MULTI, evaluated_at=WHEN)
    metrics = p["layers"]["regression"]["metrics"]
    assert metrics["acme_support_tickets_routing_validation__accuracy"]["candidate"] == \
        0.9512345678901234  # full precision
    assert metrics["acme_support_tickets_routing_test__accuracy"]["candidate"] == 0.942
    assert metrics["acme_support_tickets_routing_test__f1__macro"]["metric"] == "f1,macro"
    assert metrics["hellaswag_validation__acc_norm"]["stderr"] == 0.498  # X_stderr beside X
    assert "hellaswag_validation__acc_norm_stderr" not in metrics
    assert metrics["ai2_arc_arc_challenge_test__acc_norm"]["stderr"] == 1.44  # args.stderr
    tasks = {t["name"]: t for t in p["tasks"]}
    assert tasks["hellaswag:validation"]["n_shot"] == 10
    assert tasks["ai2_arc[ARC-Challenge]:test"] | {"layer": "x"} == {
        "layer": "x", "name": "ai2_arc[ARC-Challenge]:test", "task_type": "text-generation",
        "task_name": "Text Generation", "dataset": "ai2_arc",
        "source": "AI2 Reasoning Challenge (25-Shot)", "config": "ARC-Challenge", "split": "test",
        "n_shot": 25, "args": {"num_few_shot": 25}, "reported_by": "Open LLM Leaderboard"}
    assert tasks["acme/support-tickets[routing]:validation"]["revision"] == "4f1c2a9"


def test_model_index_baseline_and_metric_map(tmp_path: Path) -> None:
    from slmgate.runtime._importers import load_metric_map

    (tmp_path / "imports.yaml").write_text(
        'model-index:\n  "acme/support-tickets[routing]:test/accuracy": regression.accuracy\n'
        '  "hellaswag:validation/acc_norm": stress.hellaswag\n')
    mapping = load_metric_map(tmp_path / "imports.yaml", "model-index")
    p = import_model_index(MULTI, evaluated_at=WHEN, baseline=MULTI_BASE,
                           baseline_subject="b" * 64, metric_map=mapping)
    accuracy = p["layers"]["regression"]["metrics"]["accuracy"]
    assert (accuracy["candidate"], accuracy["baseline"]) == (0.942, 0.95)
    assert accuracy["task"] == "acme/support-tickets[routing]:test"
    assert p["layers"]["stress"]["metrics"]["hellaswag"]["baseline"] == 52.0
    unmapped = p["layers"]["regression"]["metrics"]["acme_support_tickets_routing_validation__accuracy"]
    assert unmapped["baseline"] == 0.955
    assert p["baseline"] == {"name": MULTI_BASE.stem, "digest": {"sha256": "b" * 64}}
    assert p["baseline_source"]["model"] == "support-triage-slm-baseline"
    assert p["finished_at"] == WHEN


def test_a_metric_map_without_the_section_asked_for_is_refused(tmp_path: Path) -> None:
    from slmgate.runtime._importers import load_metric_map

    (tmp_path / "imports.yaml").write_text('lm-eval:\n  "hellaswag,acc": regression.accuracy\n')
    with pytest.raises(InputError, match=r"imports\.yaml: model-index: expected a mapping"):
        load_metric_map(tmp_path / "imports.yaml", "model-index")
    (tmp_path / "imports.yaml").write_text('model-index:\n  "hellaswag,acc": regression.accuracy\n')
    with pytest.raises(InputError, match=r'"DATASET/METRIC"'):
        load_metric_map(tmp_path / "imports.yaml", "model-index")
    (tmp_path / "imports.yaml").write_text('lm_eval:\n  "hellaswag,acc": regression.accuracy\n')
    with pytest.raises(InputError, match="unknown section"):
        load_metric_map(tmp_path / "imports.yaml")


@pytest.mark.parametrize(("edit", "field"), [
    (lambda t: t.replace("      type: hellaswag\n", ""),
     r"results\[2\]\.dataset\.type: type is required"),
    (lambda t: t.replace("      value: 41.2\n", "      value: 41.2 ± 1.4\n"),
     r"results\[3\]\.metrics\[0\]\.value: value must be a finite number"),
    (lambda t: t.replace("num_few_shot: 25", "num_few_shot: many"),
     r"results\[3\]\.dataset\.args\.num_few_shot"),
    (lambda t: t.replace("stderr: 1.44", "stderr: small"), r"results\[3\]\.metrics\[0\]\.args\.stderr"),
    (lambda t: t.replace("      split: validation\n      args:", "      split: test\n      args:")
     .replace("type: hellaswag", "type: ai2_arc\n      config: ARC-Challenge"),
     r"results\[3\]\.dataset: dataset 'ai2_arc\[ARC-Challenge\]:test' appears twice"),
    (lambda t: t.replace("    - type: acc_norm_stderr", "    - type: acc_norm"),
     r"results\[2\]\.metrics\[1\]: metric 'acc_norm' is given twice"),
    (lambda t: t.replace("  - task:\n      type: text-generation\n      name: Text Generation\n"
                         "    dataset:\n      name: HellaSwag",
                         "  - task: text-generation\n    dataset:\n      name: HellaSwag"),
     r"results\[2\]\.task: must be a mapping"),
    (lambda t: t.replace("  results:\n", "  results: []\n  old:\n", 1),
     r"results: must be a non-empty list"),
    (lambda t: t.replace("      split: test\n      revision", "      split: [test]\n      revision"),
     r"results\[1\]\.dataset\.split: must be a string"),
])
def test_bad_cards_are_refused_naming_file_and_field(tmp_path: Path, edit: Any, field: str) -> None:
    card = tmp_path / "README.md"
    text = MULTI.read_text()
    card.write_text(edit(text))
    assert card.read_text() != text
    with pytest.raises(InputError, match=rf"README\.md: model-index\[0\]\.{field}"):
        import_model_index(card, evaluated_at=WHEN)
