"""The ledger's store and chain, and `slmgate ledger verify` against each named tampering.

``ledger_kit`` (session-scoped, reused by the other test_ledger_* modules) records three real
decisions — approved, denied for a stress regression, held for sign-off — with the gate key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import git
import pytest
from click.testing import CliRunner

from slmgate.engine import CompiledPolicy, Ledger, evaluate_promotion, load_bundle, load_request
from slmgate.engine.ledger._store import bundle_files, entry_path, files_digest, record_path, request_path
from slmgate.engine.ledger._verify import GateKeys, verify_ledger
from slmgate.engine.promote import record_in_ledger, sign_decision_record
from slmgate.evidence import SigningKey, sign_envelope
from slmgate.evidence.errors import InputError
from tests.conftest import NOW, World


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def slmgate(*args: str | Path) -> Run:
    """The CLI, in this process (click's runner): exit code, stdout and stderr apart."""
    from slmgate.engine.cli import main

    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Run(r.exit_code, r.stdout, r.stderr)


def slmgate_process(*args: str | Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process."""
    return subprocess.run([sys.executable, "-m", "slmgate.engine.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class LedgerKit:
    world: World
    ledger: Path
    ids: tuple[str, ...]  # approve, deny, review
    requests: tuple[Path, ...]

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.ledger, dest, symlinks=True)
        return dest

    @property
    def trust(self) -> Path:
        return self.world.policies / "trust.yaml"


def record_promotions(world: World, ledger: Ledger, requests: list[Path], *, minutes: int = 1,
                      policies: Path | None = None) -> list[str]:
    bundle = load_bundle(policies or world.policies)
    policy = CompiledPolicy(bundle)
    key = world.key("slmgate-gate")
    ids = []
    for i, path in enumerate(requests):
        req = load_request(path)
        result = evaluate_promotion(req, bundle, policy, now=NOW + timedelta(minutes=minutes + i))
        record = sign_decision_record(result.decision, key)
        record_in_ledger(ledger, result.decision, record, req, [e.raw for e in req.evidence], bundle)
        ids.append(result.decision.id)
    return ids


def kit_requests(world: World, root: Path) -> list[Path]:
    good = world.request(root / "approve", world.standard_evidence(), rid="req-approve")
    bad = world.request(root / "deny", world.standard_evidence(stress_accuracy=0.70), rid="req-deny")
    review = world.review_request(root / "review")
    return [good, bad, review]


@pytest.fixture(scope="session")
def ledger_kit(session_world: World, tmp_path_factory: pytest.TempPathFactory) -> LedgerKit:
    root = tmp_path_factory.mktemp("ledger-kit")
    requests = kit_requests(session_world, root)
    ledger = Ledger(root / "ledger", signing_key=session_world.key("slmgate-gate"))
    ids = record_promotions(session_world, ledger, requests)
    outcomes = [json.loads(base64.b64decode(json.loads(
        (root / "ledger" / record_path(i)).read_bytes())["payload"]))
        ["predicate"]["decision"]["outcome"] for i in ids]
    assert outcomes == ["approve", "deny", "review"], outcomes
    return LedgerKit(session_world, root / "ledger", tuple(ids), tuple(requests))


def head(ledger: Path) -> str:
    return git.Repo(ledger).head.commit.hexsha


# ------------------------------------------------------------------------------ what it keeps


def test_each_decision_is_one_commit_with_record_request_evidence_bundle_and_entry(
        ledger_kit: LedgerKit) -> None:
    repo = git.Repo(ledger_kit.ledger)
    commits = list(repo.iter_commits())
    assert len(commits) == 4  # creation + three decisions
    tree = {b.path for b in repo.head.commit.tree.traverse() if b.type == "blob"}
    for seq, did in enumerate(ledger_kit.ids, 1):
        assert record_path(did) in tree and request_path(did) in tree
        assert entry_path(seq, did) in tree
    bundle = load_bundle(ledger_kit.world.policies)
    stored = [p for p in tree if p.startswith("bundles/")]
    assert {p.split("/")[1] for p in stored} == {bundle.digest.removeprefix("sha256:")}  # stored once
    assert not repo.is_dirty(untracked_files=True)
    # the second decision stores only what the first did not: its own eval envelope
    added = {d.a_path for d in commits[1].diff(commits[2])}
    assert not any(p.startswith("bundles/") for p in added)
    assert "Slmgate-Seq: 3" in commits[0].message


def test_the_stored_bundle_loads_with_the_same_digest(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    from slmgate.engine.ledger._history import LedgerHistory

    bundle = load_bundle(ledger_kit.world.policies)
    assert files_digest(bundle_files(ledger_kit.world.policies)) == bundle.digest
    with LedgerHistory(ledger_kit.ledger) as history:
        assert load_bundle(history.bundle_dir(bundle.digest)).digest == bundle.digest


def test_each_entry_names_the_previous_one(ledger_kit: LedgerKit) -> None:
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._store import EntryManifest, entry_payload

    with LedgerHistory(ledger_kit.ledger) as history:
        raws = [history.read(p) for p in history.entry_paths]
    manifests = [EntryManifest.from_payload(entry_payload(r)[0]) for r in raws]
    assert manifests[0].prev is None
    for before, after in zip(raws, manifests[1:], strict=False):
        assert after.prev == "sha256:" + hashlib.sha256(before).hexdigest()
    assert EntryManifest.from_payload(manifests[1].payload()) == manifests[1]


def test_the_same_decision_cannot_be_recorded_twice(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger_dir = ledger_kit.copy(tmp_path / "l")
    before = head(ledger_dir)
    ledger = Ledger(ledger_dir, signing_key=ledger_kit.world.key("slmgate-gate"))
    with pytest.raises(InputError, match="already recorded"):
        record_promotions(ledger_kit.world, ledger, [ledger_kit.requests[0]])
    assert head(ledger_dir) == before
    assert not git.Repo(ledger_dir).is_dirty(untracked_files=True)


def test_the_bundle_is_stored_as_decided_even_if_the_disk_changes(world: World, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(world.policies, policies, ignore=shutil.ignore_patterns(".git"))
    bundle = load_bundle(policies)
    req = load_request(world.request(tmp_path / "r", world.standard_evidence()))
    result = evaluate_promotion(req, bundle, CompiledPolicy(bundle), now=NOW)
    original = (policies / "gates.yaml").read_bytes()
    (policies / "gates.yaml").write_text(original.decode() + "\n# edited after the decision\n")
    ledger = Ledger(tmp_path / "ledger", signing_key=world.key("slmgate-gate"))
    record = sign_decision_record(result.decision, world.key("slmgate-gate"))
    record_in_ledger(ledger, result.decision, record, req, [e.raw for e in req.evidence], bundle)
    stored = tmp_path / "ledger" / "bundles" / bundle.digest.removeprefix("sha256:") / "gates.yaml"
    assert stored.read_bytes() == original
    assert files_digest(bundle_files(tmp_path / "ledger" / "bundles" / bundle.digest.removeprefix(
        "sha256:"))) == bundle.digest


def test_a_folder_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(InputError, match="not a slmgate ledger"):
        Ledger(tmp_path / "notes")
    repo = git.Repo.init(tmp_path / "repo")
    (tmp_path / "repo" / "f").write_text("x")
    repo.index.add(["f"])
    repo.index.commit("x")
    with pytest.raises(InputError, match="marker"):
        Ledger(tmp_path / "repo")


def test_an_interrupted_write_is_cleaned_on_open(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger_dir = ledger_kit.copy(tmp_path / "l")
    git_dir = ledger_dir / ".git"
    subprocess.run(["git", "rm", "-q", "--cached", "slmgate-ledger"], cwd=ledger_dir, check=True)
    for stale in ("index.lock", "refs/heads/main.lock", "slmgate-index.4242"):
        (git_dir / stale).write_text("left by a killed writer")
    (ledger_dir / "decisions" / "dec-half.dsse.json").write_text("half")
    (ledger_dir / "evidence" / "sha256" / ".x.dsse.json.abc.tmp").write_text("partial")
    Ledger(ledger_dir)
    assert not any((git_dir / s).exists() for s in ("index.lock", "refs/heads/main.lock",
                                                    "slmgate-index.4242"))
    assert not (ledger_dir / "decisions" / "dec-half.dsse.json").exists()
    assert not git.Repo(ledger_dir).is_dirty(untracked_files=True)


# ------------------------------------------------------------------------------ verify


def test_verify_accepts_an_intact_ledger(ledger_kit: LedgerKit) -> None:
    r = slmgate_process("ledger", "verify", "--ledger", ledger_kit.ledger, "--trust", ledger_kit.trust)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK:") and "3 decision(s)" in r.stdout
    gate = ledger_kit.world.policies / "keys" / "slmgate-gate.pub"
    r = slmgate("ledger", "verify", "--ledger", ledger_kit.ledger, "--gate-key", gate, "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True


def _git(ledger: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ledger, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "PATH": "/usr/bin:/bin",
                               "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}).stdout


def _commit_all(ledger: Path, message: str = "edit") -> None:
    _git(ledger, "add", "-A")
    _git(ledger, "commit", "-q", "-m", message)


def _rewrite(ledger: Path, keep: int, edit: Callable[[Path, int], None]) -> None:
    """Rebuild history from decision ``keep``+1 on, re-committing each later decision's files
    cleanly with its own message after ``edit(ledger, seq)`` — what a careful forger does."""
    repo = git.Repo(ledger)
    commits = list(reversed(list(repo.iter_commits())))
    later = commits[keep + 1:]
    _git(ledger, "reset", "-q", "--hard", commits[keep].hexsha)
    for seq, commit in enumerate(later, keep + 1):
        for item in commit.tree.traverse():
            if item.type == "blob" and not (ledger / item.path).exists():
                (ledger / item.path).parent.mkdir(parents=True, exist_ok=True)
                (ledger / item.path).write_bytes(item.data_stream.read())
        edit(ledger, seq)
        _commit_all(ledger, commit.message)


def _request_file(ledger: Path, index: int) -> Path:
    return sorted((ledger / "requests").rglob("*.json"))[index]


def _drop_second(ledger: Path) -> None:
    """Delete decision 2 and re-commit decision 3 cleanly on top of decision 1."""
    commits = list(reversed(list(git.Repo(ledger).iter_commits())))  # create, d1, d2, d3
    second = _second(ledger)
    _git(ledger, "reset", "-q", "--hard", commits[1].hexsha)
    for item in commits[3].tree.traverse():
        if item.type == "blob" and second not in item.path and not (ledger / item.path).exists():
            (ledger / item.path).parent.mkdir(parents=True, exist_ok=True)
            (ledger / item.path).write_bytes(item.data_stream.read())
    _commit_all(ledger, commits[3].message)


def _second(ledger: Path) -> str:
    return next((ledger / "entries").rglob("00000002-*")).name.split("-", 1)[1].split(".")[0]


def _forge_in_history(ledger: Path, seq: int) -> None:
    if seq == 2:
        _forge_record(ledger, ledger / record_path(_second(ledger)), commit=False)


def _edit_new_evidence_in_history(ledger: Path, seq: int) -> None:
    if seq == 2:
        # the eval envelope first stored by decision 2 is the newest evidence file
        newest = max((ledger / "evidence").rglob("*.dsse.json"), key=lambda f: f.stat().st_mtime_ns)
        newest.write_bytes(newest.read_bytes().replace(b'"payload"', b'"payload" ', 1))


def _edit_bundle_in_history(ledger: Path, seq: int) -> None:
    if seq == 1:
        gates = next((ledger / "bundles").glob("*/gates.yaml"))
        gates.write_text(gates.read_text() + "\n# loosened\n")


def _forge_record(ledger: Path, path: Path | None = None, commit: bool = True) -> None:
    path = path or sorted((ledger / "decisions").rglob("*.dsse.json"))[0]
    env = json.loads(path.read_bytes())
    payload = base64.b64decode(env["payload"])
    forged = sign_envelope(payload.replace(b'"deny"', b'"approve"'), [SigningKey.generate()])
    path.write_bytes(forged.to_json())
    if commit:
        _commit_all(ledger)


TAMPERINGS: dict[str, Callable[[Path], None]] = {
    "edited-record-committed": lambda p: (
        sorted((p / "decisions").rglob("*.json"))[1].write_bytes(b'{"edited": true}'), _commit_all(p)),
    "edited-evidence-committed": lambda p: (
        next((p / "evidence").rglob("*.json")).write_bytes(b"{}"), _commit_all(p)),
    "edited-evidence-uncommitted": lambda p: next((p / "evidence").rglob("*.json")).write_bytes(b"{}"),
    "missing-bundle-file": lambda p: (
        next((p / "bundles").glob("*/rego/*.rego")).unlink(), _commit_all(p)),
    "missing-request-uncommitted": lambda p: _request_file(p, 0).unlink(),
    "forged-record-signature": _forge_record,
    "rewritten-commit-request-edited": lambda p: _rewrite(
        p, 1, lambda q, seq: seq == 2 and _request_file(q, 0).write_bytes(b'{"id": "other"}')),
    "rewritten-history-record-forged": lambda p: _rewrite(p, 1, _forge_in_history),
    "rewritten-history-evidence-edited": lambda p: _rewrite(p, 1, _edit_new_evidence_in_history),
    "rewritten-history-bundle-file-edited": lambda p: _rewrite(p, 0, _edit_bundle_in_history),
    "rewritten-commit-message": lambda p: _git(p, "commit", "-q", "--amend", "-m", "approve: all good"),
    "deleted-decision-recommitted-cleanly": _drop_second,
    "extra-file-committed": lambda p: ((p / "decisions" / "dec-extra.dsse.json").write_text("{}"),
                                       _commit_all(p)),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_verify_detects_tampering_and_names_the_first_bad_commit(
        ledger_kit: LedgerKit, tmp_path: Path, name: str) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    TAMPERINGS[name](ledger)
    report = verify_ledger(ledger, GateKeys.from_trust_file(ledger_kit.trust))
    assert not report.ok, name
    if name.startswith("rewritten-history"):  # the forged file itself is named, not a side effect
        assert any(w in str(report.problems[0]) for w in ("signature", "address", "bundle", "sha256")), report
    r = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert r.returncode == 4, r.stdout + r.stderr
    assert r.stdout.startswith("FAIL:") and report.problems[0].commit in r.stdout


def test_an_unsigned_chain_is_refused_unless_explicitly_allowed(world: World, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")  # no gate key: entries unsigned
    record_promotions(world, ledger, [world.request(tmp_path / "r", world.standard_evidence())])
    trust = world.policies / "trust.yaml"
    r = slmgate("ledger", "verify", "--ledger", ledger.path, "--trust", trust)
    assert r.returncode == 4 and "not signed by the gate" in r.stdout
    r = slmgate("ledger", "verify", "--ledger", ledger.path, "--trust", trust,
                "--unsafe-allow-unsigned-chain")
    assert r.returncode == 0 and "unsigned" in r.stdout


def test_records_signed_by_a_key_outside_the_root_of_trust_fail(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(SigningKey.generate().public_key.to_pem())
    r = slmgate("ledger", "verify", "--ledger", ledger_kit.ledger, "--gate-key", other)
    assert r.returncode == 4 and "no signature verifies under a trusted gate key" in r.stdout


@pytest.mark.parametrize("args", [
    ("--trust", "T"), ("--gate-key", "G"), ("--trust", "T", "--gate-key", "G"), ()])
def test_verify_bad_usage_exits_2(ledger_kit: LedgerKit, tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x").write_text("x")
    subs = {"T": str(ledger_kit.trust),
            "G": str(ledger_kit.world.policies / "keys" / "slmgate-gate.pub")}
    argv = [subs.get(a, a) for a in args]
    target = tmp_path / "plain" if len(args) == 2 else ledger_kit.ledger
    r = slmgate("ledger", "verify", "--ledger", target, *argv)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error:")

