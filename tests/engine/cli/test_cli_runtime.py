"""`slmgate evidence hash|capture|eval|import`: outputs, signed statements and exit codes."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from slmgate.engine.cli import main
from slmgate.evidence import SigningKey, hash_model_dir, write_key_pair

ASSETS = Path(__file__).resolve().parents[2] / "runtime" / "assets"
SUBJECT = "sha256:" + "ab" * 32


def slmgate(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="slmgate")


def statement_of(envelope: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(json.loads(envelope.read_bytes())["payload"]))
    return doc


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from slmgate.runtime import TrainingConfig, train_model

    root = tmp_path_factory.mktemp("models")
    return {name: train_model(TrainingConfig(seed=seed, epochs=1, train_examples=300), root / name)
            for name, seed in (("candidate", 1), ("baseline", 2))}


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    write_key_pair(SigningKey.generate(), folder / "runtime.key", folder / "runtime.pub")
    return folder / "runtime.key", folder / "runtime.pub"


def verify(envelope: Path, pub: Path, subject: str) -> Result:
    return slmgate("evidence", "verify", envelope, "--key", pub, "--subject", f"sha256:{subject}")


# --------------------------------------------------------------------------- hash


def test_hash_prints_the_root_digest_and_json_the_manifest(models: dict[str, Path]) -> None:
    root = hash_model_dir(models["candidate"]).root_digest
    r = slmgate("evidence", "hash", models["candidate"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"sha256:{root}  ")
    assert r.stderr == ""  # no progress bar off a terminal
    doc = json.loads(slmgate("evidence", "hash", models["candidate"], "--format", "json").stdout)
    assert doc["root_digest"] == f"sha256:{root}"
    assert [x["name"] for x in doc["resources"]] == ["config.json", "model.safetensors"]
    assert doc["serialization"]["method"] == "files"


def test_hash_shards_and_blake3(models: dict[str, Path]) -> None:
    shards = json.loads(slmgate("evidence", "hash", models["candidate"], "--shard-size", "65536",
                                "--format", "json").stdout)
    assert shards["serialization"] == {**shards["serialization"], "method": "shards",
                                       "shard_size": 65536, "hash_type": "sha256"}
    assert "model.safetensors:65536:131072" in {x["name"] for x in shards["resources"]}
    b3 = json.loads(slmgate("evidence", "hash", models["candidate"], "--algorithm", "blake3",
                            "--format", "json").stdout)
    assert {x["algorithm"] for x in b3["resources"]} == {"blake3"}
    r = slmgate("evidence", "hash", models["candidate"], "--algorithm", "blake3",
                "--shard-size", "65536")
    assert r.exit_code == 2 and "blake3 is not sharded" in r.stderr


def test_expect_passes_and_a_mismatch_exits_1_with_a_sorted_diff(
        models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    model = Path(shutil.copytree(models["candidate"], tmp_path / "model"))
    expected = tmp_path / "expected.json"
    expected.write_text(slmgate("evidence", "hash", model, "--shard-size", "65536",
                                "--format", "json").stdout)
    r = slmgate("evidence", "hash", model, "--expect", expected)  # its serialization is used
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"OK: {model} matches")
    (model / "tokenizer.json").write_text("{}")
    (model / "added_tokens.json").write_text("{}")
    (model / "config.json").write_text("{}")
    r = slmgate("evidence", "hash", model, "--expect", expected)
    assert r.exit_code == 1
    assert r.stdout.splitlines() == [f"FAIL: {model} differs from {expected}",
                                     "  extra: added_tokens.json", "  extra: tokenizer.json",
                                     "  changed: config.json"]
    doc = json.loads(slmgate("evidence", "hash", model, "--expect", expected, "--format",
                             "json").stdout)
    assert doc["expect"] == {"file": str(expected), "matches": False, "missing": [],
                             "extra": ["added_tokens.json", "tokenizer.json"],
                             "changed": ["config.json"]}


def test_expect_reads_a_signed_manifest_and_refuses_bad_ones(
        models: dict[str, Path], tmp_path: Path, key: tuple[Path, Path]) -> None:
    from slmgate.evidence import make_statement, sign_envelope

    manifest = hash_model_dir(models["candidate"])
    statement = make_statement("m", manifest.root_digest, "weights-manifest",
                               manifest.to_predicate("2026-01-01T00:00:00Z"))
    envelope = tmp_path / "manifest.dsse.json"
    envelope.write_bytes(sign_envelope(statement, [SigningKey.load(key[0])]).to_json())
    assert slmgate("evidence", "hash", models["candidate"], "--expect", envelope).exit_code == 0
    assert slmgate("evidence", "hash", models["baseline"], "--expect", envelope).exit_code == 1
    r = slmgate("evidence", "hash", models["candidate"], "--expect", envelope,
                "--algorithm", "blake3")
    assert r.exit_code == 2 and "uses sha256" in r.stderr
    doc = json.loads(slmgate("evidence", "hash", models["candidate"], "--format", "json").stdout)
    doc["resources"][0]["digest"] = "00" * 32  # resources no longer hash to the root it claims
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    r = slmgate("evidence", "hash", models["candidate"], "--expect", bad)
    assert r.exit_code == 2 and "inconsistent" in r.stderr
    (tmp_path / "junk.json").write_text("[]")
    assert slmgate("evidence", "hash", models["candidate"], "--expect",
                   tmp_path / "junk.json").exit_code == 2


def test_hash_refusals_exit_2(tmp_path: Path, models: dict[str, Path]) -> None:
    assert slmgate("evidence", "hash", tmp_path / "missing").exit_code == 2
    assert slmgate("evidence", "hash", models["candidate"], "--format", "yaml").exit_code == 2
    assert slmgate("evidence", "hash", models["candidate"], "--shard-size", "0").exit_code == 2
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").symlink_to(models["candidate"] / "model.safetensors")
    r = slmgate("evidence", "hash", tmp_path / "m")
    assert r.exit_code == 2 and "symbolic link" in r.stderr


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from slmgate.engine.cli import _runtime as _cli_runtime

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with _cli_runtime._progress("hashing") as progress:
        assert progress is not None
        progress(50, 100)
        progress(100, 100)
    assert "hashing" in terminal.getvalue() and "100%" in terminal.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with _cli_runtime._progress("hashing") as progress:
        assert progress is None


def test_hash_never_imports_torch(models: dict[str, Path]) -> None:
    code = ("import sys\nfrom slmgate.engine.cli import main\n"
            "try:\n    main(['evidence', 'hash', sys.argv[1]], prog_name='slmgate')\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, str(models["candidate"])],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "False"


# --------------------------------------------------------------------------- capture, eval


def test_capture_prints_the_serving_config_and_signs_it(
        models: dict[str, Path], key: tuple[Path, Path], tmp_path: Path) -> None:
    from slmgate.runtime import load_model, tensor_digest

    common = ("evidence", "capture", models["candidate"], "--device", "cpu", "--dtype",
              "bfloat16", "--batch-size", "4", "--warmup", "1", "--iterations", "5")
    r = slmgate(*common, "--format", "json")
    assert r.exit_code == 0, r.output
    config = json.loads(r.stdout)
    assert (config["device"]["type"], config["dtype"], config["batch_size"]) == ("cpu", "bfloat16", 4)
    loaded = load_model(models["candidate"], dtype="bfloat16")
    assert config["tensor_digest"] == {"sha256": tensor_digest(loaded.state_dict())}

    envelope = tmp_path / "serving.dsse.json"
    r = slmgate(*common, "--name", "support-triage", "--sign", key[0], "-o", envelope)
    assert r.exit_code == 0, r.output
    assert "p95" in r.stdout and "signed serving-config" in r.stderr
    root = hash_model_dir(models["candidate"]).root_digest
    statement = statement_of(envelope)
    assert statement["subject"] == [{"name": "support-triage", "digest": {"sha256": root}}]
    assert statement["predicate"]["dtype"] == "bfloat16"
    assert verify(envelope, key[1], root).exit_code == 0


def test_capture_on_missing_cuda_exits_2(models: dict[str, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = slmgate("evidence", "capture", models["candidate"], "--device", "cuda", "--dtype",
                "float32", "--batch-size", "8")
    assert r.exit_code == 2
    assert "CUDA is not available" in r.stderr
    r = slmgate("evidence", "eval", models["candidate"], "--baseline", models["baseline"],
                "--device", "cuda")
    assert r.exit_code == 2 and "CUDA is not available" in r.stderr


@pytest.mark.parametrize("args", [("--sign", "k.key"), ("-o", "out.json"), ("--device", "tpu")])
def test_capture_usage_errors_exit_2(models: dict[str, Path], args: tuple[str, ...]) -> None:
    r = slmgate("evidence", "capture", models["candidate"], "--device", "cpu", "--dtype",
                "float32", "--batch-size", "8", *args)
    assert r.exit_code == 2


def test_eval_names_the_baseline_digest_and_signs(
        models: dict[str, Path], key: tuple[Path, Path], tmp_path: Path) -> None:
    envelope = tmp_path / "eval.dsse.json"
    r = slmgate("evidence", "eval", models["candidate"], "--baseline", models["baseline"],
                "--name", "support-triage", "--sign", key[0], "-o", envelope)
    assert r.exit_code == 0, r.output
    assert "stress.accuracy" in r.stdout
    root = hash_model_dir(models["candidate"]).root_digest
    predicate = statement_of(envelope)["predicate"]
    assert predicate["baseline"] == {
        "name": "support-triage",
        "digest": {"sha256": hash_model_dir(models["baseline"]).root_digest}}
    assert predicate["serving"]["device"] == "cpu"
    assert set(predicate["layers"]) == {"regression", "stress", "policy"}
    assert verify(envelope, key[1], root).exit_code == 0


def test_eval_with_a_broken_suite_exits_2(models: dict[str, Path], tmp_path: Path) -> None:
    r = slmgate("evidence", "eval", models["candidate"], "--baseline", models["baseline"],
                "--suite", tmp_path)
    assert r.exit_code == 2 and "suite manifest not found" in r.stderr


# --------------------------------------------------------------------------- import


def test_import_lm_eval(tmp_path: Path, key: tuple[Path, Path]) -> None:
    r = slmgate("evidence", "import", "lm-eval", ASSETS / "lm-eval-results.json",
                "--subject", SUBJECT, "--layer", "gsm8k=stress", "--format", "json")
    assert r.exit_code == 0, r.output
    predicate = json.loads(r.stdout)
    assert predicate["baseline"] is None
    assert "gsm8k__exact_match__strict_match" in predicate["layers"]["stress"]["metrics"]
    envelope = tmp_path / "lm.dsse.json"
    r = slmgate("evidence", "import", "lm-eval", ASSETS / "lm-eval-results.json",
                "--subject", SUBJECT, "--sign", key[0], "-o", envelope)
    assert r.exit_code == 0, r.output
    statement = statement_of(envelope)
    assert statement["subject"] == [{"name": "HuggingFaceTB/SmolLM2-360M-Instruct",
                                     "digest": {"sha256": "ab" * 32}}]


def test_import_lm_eval_refuses_partial_runs(tmp_path: Path) -> None:
    r = slmgate("evidence", "import", "lm-eval", ASSETS / "lm-eval-results-limit.json",
                "--subject", SUBJECT)
    assert r.exit_code == 2 and "limit=100.0" in r.stderr
    doc = json.loads((ASSETS / "lm-eval-results.json").read_text())
    doc["n-samples"]["gsm8k"]["effective"] = 1000
    (tmp_path / "partial.json").write_text(json.dumps(doc))
    r = slmgate("evidence", "import", "lm-eval", tmp_path / "partial.json", "--subject", SUBJECT)
    assert r.exit_code == 2
    assert "task 'gsm8k' evaluated 1000 of 1319 samples" in r.stderr
    r = slmgate("evidence", "import", "lm-eval", ASSETS / "lm-eval-results.json",
                "--subject", "sha256:1234")
    assert r.exit_code == 2 and "--subject" in r.stderr


def test_import_model_index() -> None:
    card = ASSETS / "model-card-README.md"
    r = slmgate("evidence", "import", "model-index", card, "--subject", SUBJECT)
    assert r.exit_code == 2 and "--evaluated-at" in r.stderr
    r = slmgate("evidence", "import", "model-index", card, "--subject", SUBJECT,
                "--evaluated-at", "2026-11-01T00:00:00Z", "--format", "json")
    assert r.exit_code == 0, r.output
    # a metric is named by its dataset and split (TYPE[CONFIG]:SPLIT), so two splits never merge
    assert json.loads(r.stdout)["layers"]["regression"]["metrics"]["hellaswag_validation__acc_norm"] == {
        "candidate": 53.4, "baseline": None, "task": "hellaswag:validation", "metric": "acc_norm"}


def test_expect_uses_the_manifests_ignore_paths(models: dict[str, Path], tmp_path: Path) -> None:
    """A model-signing manifest made with ignore_git_paths=False has no ignore_paths: .git is
    then part of the weights, and a change there is a difference."""
    import shutil

    model = Path(shutil.copytree(models["candidate"], tmp_path / "model"))
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    manifest = hash_model_dir(model, ignore_paths=())
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"serialization": {"method": "files", "hash_type": "sha256",
                                                      "allow_symlinks": False},
                                    "resources": [r.__dict__ for r in manifest.resources]}))
    r = slmgate("evidence", "hash", model, "--expect", expected)
    assert r.exit_code == 0, r.output
    assert "(none: .git is hashed too)" in r.stderr
    (model / ".git" / "HEAD").write_text("ref: refs/heads/evil\n")
    r = slmgate("evidence", "hash", model, "--expect", expected)
    assert r.exit_code == 1 and "changed: .git/HEAD" in r.stdout
