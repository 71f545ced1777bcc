"""The ledger under stress: writers killed at random points, writers racing each other, and
bad input — the ledger stays verifiable, each decision recorded whole or not at all."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import git
import pytest

from slmgate.engine import CompiledPolicy, Ledger, evaluate_promotion, load_bundle, load_request
from slmgate.engine.ledger._store import bundle_files, record_path, request_path
from slmgate.engine.ledger._verify import GateKeys, verify_ledger
from slmgate.engine.promote import sign_decision_record
from tests.conftest import NOW, World, recent
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate, slmgate_process

__all__ = ["ledger_kit"]

WRITER = """
import base64, json, sys
from pathlib import Path
from slmgate.engine.ledger._store import Ledger, LedgerError, PendingDecision
from slmgate.evidence import SigningKey
b = base64.b64decode
db = Ledger(Path(sys.argv[1]), signing_key=SigningKey.load(Path(sys.argv[2])))
print("ready", flush=True)
for path in sys.argv[3:]:
    d = json.loads(Path(path).read_text())
    pending = PendingDecision(d["id"], d["outcome"], b(d["record"]), b(d["request"]),
                              tuple((r, b(x)) for r, x in d["evidence"]),
                              {k: b(v) for k, v in d["bundle"].items()}, d["digest"], None, d["message"])
    try:
        db.record_pending(pending)
        print("recorded", flush=True)
    except LedgerError as exc:
        if "already recorded" not in str(exc):
            raise
"""


def _parcels(world: World, requests: list[Path], dest: Path, count: int) -> list[Path]:
    """``count`` distinct signed decisions, as files a writer process records."""
    bundle = load_bundle(world.policies)
    policy = CompiledPolicy(bundle)
    files = {k: base64.b64encode(v).decode() for k, v in bundle_files(world.policies).items()}
    key = world.key("slmgate-gate")
    made = []
    for n, path in enumerate(requests):
        req = load_request(path)
        made.append((req, evaluate_promotion(req, bundle, policy, now=NOW + timedelta(minutes=n)).decision))
    dest.mkdir()
    out = []
    for i in range(count):
        req, decision = made[i % len(made)]
        variant = replace(decision, id=f"dec-{i:020x}")
        doc = {"id": variant.id, "outcome": variant.outcome, "digest": bundle.digest,
               "message": f"{variant.outcome}: variant {i}",
               "record": base64.b64encode(sign_decision_record(variant, key)).decode(),
               "request": base64.b64encode(req.raw).decode(),
               "evidence": [(e.ref, base64.b64encode(e.raw).decode()) for e in req.evidence],
               "bundle": files}
        out.append(dest / f"{i:04d}.json")
        out[-1].write_text(json.dumps(doc))
    return out


def _writer(ledger: Path, world: World, parcels: list[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(ledger),
                             str(world.secrets / "slmgate-gate.key"), *map(str, parcels)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _recorded(ledger: Path, count: int) -> list[int]:
    """Which of the ``count`` variants are in HEAD — each wholly (entry, record, request)."""
    tree = {b.path for b in git.Repo(ledger).head.commit.tree.traverse() if b.type == "blob"}
    found = []
    for i in range(count):
        did = f"dec-{i:020x}"
        parts = [any(p.startswith("entries/") and did in p for p in tree),
                 record_path(did) in tree, request_path(did) in tree]
        assert all(parts) or not any(parts), (did, parts)
        if all(parts):
            found.append(i)
    return found


def test_a_writer_killed_at_random_points_leaves_a_verifiable_ledger(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    world, gates = ledger_kit.world, GateKeys.from_trust_file(ledger_kit.trust)
    parcels = _parcels(world, list(ledger_kit.requests[:2]), tmp_path / "parcels", 100)
    ledger = tmp_path / "ledger"
    Ledger(ledger, signing_key=world.key("slmgate-gate"))
    rng = random.Random(7)
    deadline = time.monotonic() + 60
    kills = 0
    for cycle in range(16):
        if time.monotonic() > deadline:
            break
        proc = _writer(ledger, world, parcels)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        if cycle % 2:  # every other writer records one decision first, so work gets done on a
            assert proc.stdout.readline().strip() == "recorded"  # loaded machine too
        time.sleep(rng.uniform(0.0, 0.35))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        report = verify_ledger(ledger, gates)
        assert report.ok, [str(p) for p in report.problems]
        _recorded(ledger, len(parcels))
    assert kills >= 10
    done = _recorded(ledger, len(parcels))
    assert 0 < len(done) < len(parcels)  # kills landed mid-way through the work
    assert done == list(range(len(done)))  # in order, none lost before the last one recorded
    # a later writer cleans up what the kills left and carries on
    proc = _writer(ledger, world, parcels[:len(done) + 2])
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert len(_recorded(ledger, len(parcels))) == len(done) + 2
    assert not git.Repo(ledger).is_dirty(untracked_files=True)
    assert verify_ledger(ledger, gates).ok


def test_concurrent_writers_lose_nothing_and_corrupt_nothing(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    world = ledger_kit.world
    parcels = _parcels(world, list(ledger_kit.requests), tmp_path / "parcels", 18)
    ledger = tmp_path / "ledger"  # created by whichever writer gets there first
    shared = parcels[16:]
    procs = [_writer(ledger, world, [*parcels[k * 4:k * 4 + 4], *shared]) for k in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    assert _recorded(ledger, 18) == list(range(18))
    report = verify_ledger(ledger, GateKeys.from_trust_file(ledger_kit.trust))
    assert report.ok and report.decisions == 18, [str(p) for p in report.problems]
    assert len(list(git.Repo(ledger).iter_commits())) == 19


def test_concurrent_promote_processes_on_one_ledger(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    world = ledger_kit.world
    ledger = tmp_path / "ledger"
    # A recorded decision is made at the real time, so the three requests are fresh and distinct.
    requests = [world.request(tmp_path / f"req{i}", world.standard_evidence(when=recent()),
                              rid=f"req-concurrent-{i}") for i in range(3)]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "slmgate.engine.cli", "promote", str(requests[i]),
         "--policies", str(world.policies), "--ledger", str(ledger),
         "--signing-key", str(world.secrets / "slmgate-gate.key")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0], [p.stderr.read() for p in procs if p.stderr]
    r = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust,
                "--unsafe-allow-unsigned-chain", "--format", "json")  # promote has no key for the chain yet
    assert r.returncode == 0, r.stdout
    assert json.loads(r.stdout)["decisions"] == 3


def _state(path: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*"))


@pytest.mark.parametrize("command", [
    ("ledger", "log"), ("ledger", "replay", "dec-00000000"), ("ledger", "export", "dec-0", "--junit", "J"),
    ("ledger", "what-if", "--policies", "P"), ("ledger", "verify", "--gate-key", "G"),
])
def test_a_folder_that_is_not_a_ledger_exits_2_and_is_left_alone(
        ledger_kit: LedgerKit, tmp_path: Path, command: tuple[str, ...]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not a ledger")
    before = _state(tmp_path)
    subs = {"J": str(tmp_path / "out.xml"), "P": str(ledger_kit.world.policies),
            "G": str(ledger_kit.world.policies / "keys" / "slmgate-gate.pub")}
    r = slmgate(*[subs.get(a, a) for a in command], "--ledger", plain)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not a slmgate ledger" in r.stderr
    assert _state(tmp_path) == before


def _corrupt(ledger: Path, rel: str) -> None:
    blob = git.Repo(ledger).git.rev_parse(f"HEAD:{rel}")
    path = ledger / ".git" / "objects" / blob[:2] / blob[2:]
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
    path.write_bytes(b"\x78\x9c garbage, not zlib")


def test_a_corrupted_object_is_a_clear_error_and_nothing_is_written(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "ledger")
    _corrupt(ledger, record_path(ledger_kit.ids[1]))
    head = git.Repo(ledger).head.commit.hexsha
    for args in (("ledger", "log"), ("ledger", "replay", ledger_kit.ids[1])):
        r = slmgate(*args, "--ledger", ledger)
        assert r.returncode == 2 and "corrupted" in r.stderr, r.stderr
    # ledger verify is the audit: a ledger whose objects are damaged could not be verified (4)
    r = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert r.returncode == 4 and "corrupted" in r.stdout, r.stdout + r.stderr
    _corrupt(ledger, "slmgate-ledger")  # HEAD unreadable: a writer refuses before evaluating
    r = slmgate_process("promote", ledger_kit.requests[0], "--policies", ledger_kit.world.policies,
                        "--ledger", ledger, "--signing-key", ledger_kit.world.secrets / "slmgate-gate.key")
    assert r.returncode == 2, r.stderr
    assert git.Repo(ledger).head.commit.hexsha == head
    r = slmgate("ledger", "verify", "--ledger", ledger, "--trust", ledger_kit.trust)
    assert r.returncode == 4 and "corrupted" in r.stdout, r.stdout + r.stderr
