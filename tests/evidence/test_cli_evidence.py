"""`slmgate keys generate`, `slmgate evidence sign` and `slmgate evidence verify`: files, messages
and exit codes (0 verified, 4 refused with its step, 2 bad usage)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slmgate.engine.cli import main
from slmgate.evidence import PublicKey, SigningKey, format_time, make_statement
from tests.conftest import MODEL, NOW, World, eval_predicate

AT = format_time(NOW)


def slmgate(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_keys_generate_writes_a_private_key_0600_and_a_public_pem(tmp_path: Path) -> None:
    for algorithm in ("ed25519", "ecdsa-p256"):
        r = slmgate("keys", "generate", f"k-{algorithm}", "--out", tmp_path / "keys",
                    "--algorithm", algorithm)
        assert r.exit_code == 0, r.output
        private, public = tmp_path / "keys" / f"k-{algorithm}.key", tmp_path / "keys" / f"k-{algorithm}.pub"
        assert private.stat().st_mode & 0o777 == 0o600
        key = SigningKey.load(private)
        assert key.public_key.algorithm == algorithm
        assert PublicKey.load(public).keyid == key.keyid and key.keyid in r.output


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_keys_generate_refuses_names_that_are_not_plain_file_names(tmp_path: Path, name: str) -> None:
    r = slmgate("keys", "generate", name, "--out", tmp_path / "keys")
    assert r.exit_code == 2 and "not a key name" in r.output
    assert not any(tmp_path.rglob("*.key"))


def test_keys_generate_never_overwrites(tmp_path: Path) -> None:
    assert slmgate("keys", "generate", "k", "--out", tmp_path).exit_code == 0
    before = (tmp_path / "k.key").read_bytes()
    r = slmgate("keys", "generate", "k", "--out", tmp_path)
    assert r.exit_code == 2 and "never overwrites" in r.output
    assert (tmp_path / "k.key").read_bytes() == before


@pytest.fixture
def signed(world: World, tmp_path: Path) -> Path:
    statement = tmp_path / "statement.json"
    statement.write_bytes(make_statement(MODEL, world.candidate_sha, "eval-result",
                                         eval_predicate(world.baseline_sha)))
    envelope = tmp_path / "eval.dsse.json"
    r = slmgate("evidence", "sign", statement, "--key", world.secrets / "eval-harness.key", "-o", envelope)
    assert r.exit_code == 0, r.output
    return envelope


def test_sign_keeps_the_statement_bytes_as_they_are_on_disk(world: World, tmp_path: Path) -> None:
    statement = tmp_path / "statement.json"
    doc = json.loads(make_statement(MODEL, world.candidate_sha, "eval-result",
                                    eval_predicate(world.baseline_sha)))
    statement.write_text(json.dumps(doc, indent=4))  # not canonical: signed as is
    r = slmgate("evidence", "sign", statement, "--key", world.secrets / "eval-harness.key",
                "--key", world.secrets / "runtime.key", "-o", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    env = json.loads((tmp_path / "e.json").read_bytes())
    assert base64.b64decode(env["payload"]) == statement.read_bytes()
    assert len(env["signatures"]) == 2


def test_verify_with_one_key_and_with_the_trust_policy(world: World, signed: Path) -> None:
    subject = f"sha256:{world.candidate_sha}"
    r = slmgate("evidence", "verify", signed, "--key", world.policies / "keys" / "eval-harness.pub",
                "--subject", subject, "--at", AT)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("OK: ") and "eval-result" in r.stdout
    r = slmgate("evidence", "verify", signed, "--trust", world.policies / "trust.yaml",
                "--subject", subject, "--at", AT, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["verified"] is True and doc["signers"] == ["eval-harness (eval-harness, service)"]
    assert doc["subject_sha256"] == world.candidate_sha and doc["issued_at"] == AT


@pytest.mark.parametrize("args, step", [
    (["--key", "keys/runtime.pub"], "signature"),  # someone else's key
    (["--trust", "trust.yaml", "--subject", "sha256:" + "0" * 64], "subject"),
    (["--trust", "trust.yaml", "--at", "2026-12-20T12:00:00Z"], "freshness"),  # 30 days later
    (["--key", "keys/eval-harness.pub", "--at", "2026-11-19T12:00:00Z"], "freshness"),  # before it
])
def test_a_refusal_exits_4_naming_its_step(world: World, signed: Path, args: list[str], step: str) -> None:
    args = [str(world.policies / a) if a.startswith(("keys/", "trust.")) else a for a in args]
    if "--at" not in args:
        args += ["--at", AT]
    r = slmgate("evidence", "verify", signed, *args, "--format", "json")
    assert r.exit_code == 4, r.output
    assert json.loads(r.stdout)["failed_step"] == step


def test_a_tampered_envelope_exits_4_in_text_too(world: World, signed: Path) -> None:
    doc = json.loads(signed.read_bytes())
    doc["payload"] = base64.b64encode(base64.b64decode(doc["payload"]).replace(b"0.9", b"0.8")).decode()
    signed.write_text(json.dumps(doc))
    r = slmgate("evidence", "verify", signed, "--trust", world.policies / "trust.yaml", "--at", AT)
    assert r.exit_code == 4
    assert r.stdout.startswith(f"FAIL: {signed}: signature:")


def test_without_subject_it_warns_that_nothing_is_bound(world: World, signed: Path) -> None:
    r = slmgate("evidence", "verify", signed, "--trust", world.policies / "trust.yaml", "--at", AT)
    assert r.exit_code == 0
    assert "not bound to any weights" in r.stderr


@pytest.mark.parametrize("args, message", [
    ([], "exactly one of --key or --trust"),
    (["--key", "keys/eval-harness.pub", "--trust", "trust.yaml"], "exactly one of --key or --trust"),
    (["--key", "keys/eval-harness.pub", "--at", "next tuesday"], "--at"),
    (["--key", "keys/eval-harness.pub", "--subject", "md5:abc"], "--subject"),
    (["--key", "keys/nope.pub"], "nope.pub"),
    (["--key", "keys/eval-harness.pub", "--format", "yaml"], "yaml"),
])
def test_bad_usage_exits_2_with_a_clear_message(world: World, signed: Path, args: list[str],
                                                 message: str) -> None:
    args = [str(world.policies / a) if a.startswith(("keys/", "trust.")) else a for a in args]
    r = slmgate("evidence", "verify", signed, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_a_missing_envelope_exits_2(world: World, tmp_path: Path) -> None:
    r = slmgate("evidence", "verify", tmp_path / "absent.json", "--key",
                world.policies / "keys" / "eval-harness.pub")
    assert r.exit_code == 2 and "absent.json" in r.output


def test_sign_refuses_a_predicate_that_would_not_verify(world: World, tmp_path: Path) -> None:
    pred = eval_predicate(world.baseline_sha)
    pred["layers"]["policy"]["metrics"]["pii_escalation_recall"]["candidate"] = "all"
    statement = tmp_path / "s.json"
    statement.write_bytes(make_statement(MODEL, world.candidate_sha, "eval-result", pred))
    r = slmgate("evidence", "sign", statement, "--key", world.secrets / "eval-harness.key",
                "-o", tmp_path / "e.json")
    assert r.exit_code == 2
    assert f"{statement}: predicate.layers.policy.metrics.pii_escalation_recall.candidate:" in r.output
    assert not (tmp_path / "e.json").exists()


def test_sign_refuses_what_is_not_a_statement(world: World, tmp_path: Path) -> None:
    statement = tmp_path / "s.json"
    statement.write_text('{"hello": "world"}')
    r = slmgate("evidence", "sign", statement, "--key", world.secrets / "eval-harness.key",
                "-o", tmp_path / "e.json")
    assert r.exit_code == 2 and "not an in-toto Statement" in r.output
