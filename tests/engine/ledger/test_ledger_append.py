"""Cheap appends: the index is reused when it is the one the last writer left for HEAD, files
a killed writer journalled are dropped without walking the working tree, an index touched by
someone else is rebuilt, and the ledger packs itself every ``PACK_EVERY`` decisions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from slmgate.engine import Ledger
from slmgate.engine.ledger import _store
from slmgate.engine.ledger._verify import GateKeys, verify_ledger
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, record_promotions

__all__ = ["ledger_kit"]


def _count_objects(ledger: Path) -> dict[str, int]:
    out = subprocess.run(["git", "count-objects", "-v"], cwd=ledger, capture_output=True, text=True,
                         check=True).stdout
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines()) if v.isdigit()}


def test_files_a_killed_writer_journalled_are_dropped_by_the_next_append(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger_dir = ledger_kit.copy(tmp_path / "l")
    ledger = Ledger(ledger_dir, signing_key=ledger_kit.world.key("slmgate-gate"))
    half = "decisions/ab/dec-half.dsse.json"
    (ledger_dir / "decisions" / "ab").mkdir(exist_ok=True)
    (ledger_dir / half).write_text("half")
    (ledger_dir / "decisions" / "ab" / ".dec-half.dsse.json.x1.tmp").write_text("partial")
    (ledger_dir / ".git" / "slmgate-journal").write_text(f"{half}\n")
    record_promotions(ledger_kit.world, ledger, [ledger_kit.requests[0]], minutes=80)
    assert not (ledger_dir / half).exists()
    assert not list((ledger_dir / "decisions" / "ab").glob("*.tmp"))
    assert not (ledger_dir / ".git" / "slmgate-journal").exists()
    assert not git.Repo(ledger_dir).is_dirty(untracked_files=True)
    assert verify_ledger(ledger_dir, GateKeys.from_trust_file(ledger_kit.trust)).ok


def test_an_index_changed_by_someone_else_is_rebuilt_before_appending(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger_dir = ledger_kit.copy(tmp_path / "l")
    ledger = Ledger(ledger_dir, signing_key=ledger_kit.world.key("slmgate-gate"))
    subprocess.run(["git", "rm", "-q", "--cached", "slmgate-ledger"], cwd=ledger_dir, check=True)
    record_promotions(ledger_kit.world, ledger, [ledger_kit.requests[0]], minutes=81)
    tree = {b.path for b in git.Repo(ledger_dir).head.commit.tree.traverse() if b.type == "blob"}
    assert "slmgate-ledger" in tree  # the append did not commit the stray removal
    assert not git.Repo(ledger_dir).is_dirty(untracked_files=True)
    assert verify_ledger(ledger_dir, GateKeys.from_trust_file(ledger_kit.trust)).ok


def test_the_ledger_packs_its_loose_objects_periodically(
        ledger_kit: LedgerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger_dir = ledger_kit.copy(tmp_path / "l")
    monkeypatch.setattr(_store, "PACK_EVERY", 4)  # the kit holds 3: the next one is the 4th
    ledger = Ledger(ledger_dir, signing_key=ledger_kit.world.key("slmgate-gate"))
    assert _count_objects(ledger_dir)["packs"] == 0
    record_promotions(ledger_kit.world, ledger, [ledger_kit.requests[0]], minutes=82)
    counted = _count_objects(ledger_dir)
    assert counted["packs"] >= 1 and counted["count"] == 0, counted
    assert list((ledger_dir / ".git" / "objects" / "info" / "commit-graphs").glob("*.graph"))
    assert verify_ledger(ledger_dir, GateKeys.from_trust_file(ledger_kit.trust)).ok


def test_an_append_after_an_append_neither_walks_the_tree_nor_rereads_the_index(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger_dir = ledger_kit.copy(tmp_path / "l")
    calls: list[str] = []
    for minutes in (83, 84):
        ledger = Ledger(ledger_dir, signing_key=ledger_kit.world.key("slmgate-gate"))
        original = ledger._git

        def counted(*args: str, env: object = None, original: object = original) -> str:
            calls.append(args[0])
            return original(*args, env=env)  # type: ignore[operator]

        ledger._git = counted  # type: ignore[method-assign]
        record_promotions(ledger_kit.world, ledger, [ledger_kit.requests[0]], minutes=minutes)
        # the stamp of the index the writer installed survives, so the next one trusts it
        assert (ledger_dir / ".git" / "slmgate-indexed").is_file()
        assert "ls-files" not in calls and "read-tree" not in calls, calls
    assert verify_ledger(ledger_dir, GateKeys.from_trust_file(ledger_kit.trust)).ok
