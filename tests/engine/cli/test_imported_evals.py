"""Imported evaluations that can decide: a metric map (imports.yaml) feeds an lm-eval metric to a
gate, a baseline results file gives maximum-drop gates their baseline, and a file's own date
cannot be overridden to make stale results look fresh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from slmgate.engine import evaluate_promotion, load_bundle, load_request
from slmgate.engine.cli import main
from slmgate.engine.policy._engines import embedded_engine
from slmgate.evidence import format_time
from tests.conftest import World

ASSETS = Path(__file__).resolve().parents[2] / "runtime" / "assets"
RESULTS = ASSETS / "lm-eval-results.json"
MEASURED = 1763640000.5  # the results file's own date (2025-11-20T12:00:00Z)


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _imports(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imports.yaml"
    path.write_text(text)
    return path


def test_the_file_date_cannot_be_overridden(tmp_path: Path) -> None:
    code, _, err = run("evidence", "import", "lm-eval", RESULTS, "--subject", "sha256:" + "a" * 64,
                       "--evaluated-at", "2026-11-28T00:00:00Z")
    assert code == 2 and "carry their own date" in err


def test_a_mapped_metric_feeds_its_gate_with_the_baseline(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    doc = json.loads(RESULTS.read_text())
    doc["results"]["hellaswag"]["acc,none"] = 0.45
    baseline.write_text(json.dumps(doc))
    imports = _imports(tmp_path, 'lm-eval:\n  "hellaswag,acc": regression.accuracy\n')
    code, out, err = run("evidence", "import", "lm-eval", RESULTS, "--subject", "sha256:" + "a" * 64,
                         "--baseline", baseline, "--baseline-subject", "sha256:" + "b" * 64,
                         "--imports", imports, "--format", "json")
    assert code == 0, err
    statement = json.loads(out)
    predicate = statement.get("predicate", statement)
    metric = predicate["layers"]["regression"]["metrics"]["accuracy"]
    assert metric["candidate"] == 0.415255925114519  # full precision, as read
    assert metric["baseline"] == 0.45
    assert predicate["baseline"]["digest"]["sha256"] == "b" * 64
    assert predicate["finished_at"].startswith("2025-11-20")


def test_a_metric_map_with_a_duplicate_or_an_unknown_layer_is_refused(tmp_path: Path) -> None:
    twice = _imports(tmp_path, 'lm-eval:\n  "hellaswag,acc": regression.accuracy\n'
                               '  "hellaswag,acc": stress.accuracy\n')
    code, _, err = run("evidence", "import", "lm-eval", RESULTS, "--subject", "sha256:" + "a" * 64,
                       "--imports", twice)
    assert code == 2 and "appears twice" in err
    wrong = _imports(tmp_path, 'lm-eval:\n  "hellaswag,acc": vibes.accuracy\n')
    code, _, err = run("evidence", "import", "lm-eval", RESULTS, "--subject", "sha256:" + "a" * 64,
                       "--imports", wrong)
    assert code == 2 and "lm-eval" in err


def test_an_imported_eval_can_satisfy_a_gate(world: World, tmp_path: Path) -> None:
    """With a gates.yaml that gates on regression accuracy alone, the imported and mapped
    hellaswag accuracy decides the gate: passed above the minimum, denied below it."""
    from slmgate.runtime import import_lm_eval
    from slmgate.runtime._importers import load_metric_map

    policies = tmp_path / "policies"
    shutil.copytree(world.policies, policies)
    gates = yaml.safe_load((policies / "gates.yaml").read_text())
    gates["eval"] = {"regression": {"accuracy": {"min": 0.40, "max_drop": 0.05}}}
    (policies / "gates.yaml").write_text(yaml.safe_dump(gates))
    mapping = load_metric_map(_imports(tmp_path, 'lm-eval:\n  "hellaswag,acc": regression.accuracy\n'))
    predicate = import_lm_eval(RESULTS, baseline=RESULTS, baseline_subject=world.baseline_sha,
                               metric_map=mapping)
    from datetime import UTC, datetime, timedelta
    when = datetime.fromtimestamp(MEASURED, UTC)
    evidence = world.standard_evidence(when=when)
    evidence["eval-result"] = world.envelope("eval-harness", "eval-result", predicate)
    req = world.request(tmp_path / "req", evidence)
    bundle = load_bundle(policies)
    decision = evaluate_promotion(load_request(req), bundle, embedded_engine(bundle),
                                  now=when + timedelta(hours=1)).decision
    checks = {c["rule_id"]: c["passed"] for c in decision.checks}
    assert checks["gate.regression.accuracy.min"] is True
    assert checks["gate.regression.accuracy.max_drop"] is True
    assert checks["evidence.eval.baseline"] is True
    assert format_time(when).startswith("2025-11-20")


CARDS = Path(__file__).resolve().parents[2] / "runtime" / "assets"
CARD = CARDS / "model-card-multisplit-README.md"
CARD_BASE = CARDS / "model-card-multisplit-baseline-README.md"


def test_a_model_card_import_with_baseline_and_metric_map(tmp_path: Path) -> None:
    imports = _imports(tmp_path, 'model-index:\n'
                                 '  "acme/support-tickets[routing]:test/accuracy": regression.accuracy\n')
    args = ["evidence", "import", "model-index", CARD, "--subject", "sha256:" + "a" * 64,
            "--evaluated-at", "2026-11-28T00:00:00Z", "--baseline", CARD_BASE,
            "--baseline-subject", "sha256:" + "b" * 64, "--imports", imports]
    code, out, err = run(*args)
    assert code == 0, err
    assert "regression.accuracy: 0.942 (baseline 0.95)  [acme/support-tickets[routing]:test/accuracy]" in out
    assert "± 0.498  [hellaswag:validation/acc_norm]" in out  # the key to map it by, and its stderr
    code, out, err = run(*args, "--format", "json")
    predicate = json.loads(out)
    assert predicate["layers"]["regression"]["metrics"]["accuracy"]["baseline"] == 0.95
    assert predicate["baseline"]["digest"]["sha256"] == "b" * 64


def test_a_bad_card_is_exit_2_naming_file_and_field(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text(CARD.read_text().replace("value: 0.942", "value: n/a"))
    code, _, err = run("evidence", "import", "model-index", card, "--subject", "sha256:" + "a" * 64,
                       "--evaluated-at", "2026-11-28T00:00:00Z")
    assert code == 2
    assert f"{card}: model-index[0].results[1].metrics[0].value" in err
    code, _, err = run("evidence", "import", "model-index", CARD, "--subject", "sha256:" + "a" * 64,
                       "--evaluated-at", "2026-11-28T00:00:00Z", "--baseline", CARD_BASE)
    assert code == 2 and "--baseline and --baseline-subject go together" in err


def test_policy_check_validates_the_metric_map(world: World, tmp_path: Path) -> None:
    """The shipped imports.yaml maps only to gates; one mapping to no gate, or a malformed one,
    fails `policy check` (exit 2) naming imports.yaml and the key."""
    policies = tmp_path / "policies"
    shutil.copytree(world.policies, policies)
    assert (policies / "imports.yaml").is_file()
    code, _, err = run("policy", "check", "--policies", policies)
    assert code == 0, err
    with (policies / "imports.yaml").open("a") as f:
        f.write('  "support_triage_policy,recall": policy.recall\n')
    code, _, err = run("policy", "check", "--policies", policies)
    assert code == 2
    assert "imports.yaml: lm-eval.support_triage_policy,recall: policy.recall is not a gate" in err
    (policies / "imports.yaml").write_text('lm_eval:\n  "a,b": regression.accuracy\n')
    code, _, err = run("policy", "check", "--policies", policies)
    assert code == 2 and "imports.yaml: lm_eval: unknown section" in err
