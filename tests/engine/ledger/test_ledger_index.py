"""The ledger's rebuildable index (``.slmgate/index.sqlite``): kept out of git, caught up
incrementally, rebuilt when history was rewritten, and never trusted — a tampered row is caught
by the re-check against git and the index rebuilt, or the command fails closed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import pytest

from slmgate.engine import CompiledPolicy, Ledger, evaluate_promotion, load_bundle, load_request
from slmgate.engine.ledger import _index
from slmgate.engine.ledger._decision_log import decision_log
from slmgate.engine.ledger._history import LedgerHistory
from slmgate.engine.ledger._index import ChainIndex, resolve_decision
from slmgate.engine.ledger._store import LedgerError, entry_path
from slmgate.engine.ledger._verify import GateKeys, verify_ledger
from slmgate.engine.promote import record_in_ledger, sign_decision_record
from tests.conftest import NOW
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, record_promotions, slmgate

__all__ = ["ledger_kit"]


def _log(ledger: Path, **filters: object) -> list[dict]:  # type: ignore[type-arg]
    with LedgerHistory(ledger) as history:
        return list(decision_log(history, **filters))  # type: ignore[arg-type]


def _git_only_log(ledger: Path, monkeypatch: pytest.MonkeyPatch, **filters: object) -> list[dict]:  # type: ignore[type-arg]
    with monkeypatch.context() as m:
        m.setattr(ChainIndex, "open", classmethod(lambda cls, history: None))
        return _log(ledger, **filters)


def _index_file(ledger: Path) -> Path:
    return ledger / ".slmgate" / "index.sqlite"


def _tamper(ledger: Path, sql: str, *params: object, keep_stamp: bool) -> None:
    """Change the index behind slmgate's back; with ``keep_stamp``, also forge the stamp so that
    only the re-check of returned rows can notice."""
    with sqlite3.connect(_index_file(ledger)) as db:
        db.execute(sql, params)
    db.close()
    if keep_stamp:
        _tamper_stamp(ledger)


def _tamper_stamp(ledger: Path) -> None:
    """The stamp rewritten to match the index file as it is now."""
    st = _index_file(ledger).stat()
    stamp = ledger / ".slmgate" / "index.stamp"
    schema = stamp.read_text().splitlines()[0]
    stamp.write_text(f"{schema}\n{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}\n")


def _rows(ledger: Path) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(_index_file(ledger)) as db:
        rows = db.execute("SELECT seq, kind, entry_id, outcome FROM chain ORDER BY seq").fetchall()
    db.close()
    return rows


def test_the_log_through_the_index_is_the_log_of_git(
        ledger_kit: LedgerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    for filters in ({}, {"outcomes": ["deny"]}, {"model": "support-triage"}, {"model": "other"}):
        assert _log(ledger, **filters) == _git_only_log(ledger, monkeypatch, **filters)
    outcomes = ["approve", "deny", "review"]
    assert _rows(ledger) == [(i + 1, "decision", d, o)
                             for i, (d, o) in enumerate(zip(ledger_kit.ids, outcomes, strict=True))]
    trailers = subprocess.run(["git", "log", "--format=%H %(trailers:key=Slmgate-Seq,valueonly)"],
                              cwd=ledger, capture_output=True, text=True, check=True).stdout
    by_seq = {int(seq): sha for sha, _, seq in (line.partition(" ") for line in trailers.split("\n"))
              if seq.strip().isdigit()}
    assert [r["commit"] for r in _log(ledger)] == [by_seq[1], by_seq[2], by_seq[3]]
    # derived data: ignored by git, never committed, no concern of verify
    assert not git.Repo(ledger).is_dirty(untracked_files=True)
    assert "/.slmgate/" in (ledger / ".git" / "info" / "exclude").read_text().splitlines()
    assert verify_ledger(ledger, GateKeys.from_trust_file(ledger_kit.trust)).ok


def test_the_index_catches_up_with_new_decisions_without_a_rebuild(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    _log(ledger)
    inode = _index_file(ledger).stat().st_ino
    writer = Ledger(ledger, signing_key=ledger_kit.world.key("slmgate-gate"))
    new = record_promotions(ledger_kit.world, writer, [ledger_kit.requests[0]], minutes=90)
    with LedgerHistory(ledger) as history:
        index = ChainIndex.open(history)
        assert index is not None and index.rebuilds == 0 and index.count == 4
    assert _index_file(ledger).stat().st_ino == inode  # one transaction in place, not a new file
    assert [r["decision_id"] for r in _log(ledger)] == [*ledger_kit.ids, *new]


def test_a_reader_of_an_older_commit_reads_only_its_decisions(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    _log(ledger)
    with LedgerHistory(ledger, commit="HEAD~1") as history:
        assert [r["decision_id"] for r in decision_log(history)] == list(ledger_kit.ids[:2])


def test_a_rewritten_history_rebuilds_the_index(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    _log(ledger)
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD~1"], cwd=ledger, check=True)
    writer = Ledger(ledger, signing_key=ledger_kit.world.key("slmgate-gate"))
    new = record_promotions(ledger_kit.world, writer, [ledger_kit.requests[0]], minutes=91)
    with LedgerHistory(ledger) as history:
        index = ChainIndex.open(history)
        assert index is not None and index.rebuilds == 1
    assert [r["decision_id"] for r in _log(ledger)] == [*ledger_kit.ids[:2], *new]


def test_an_edited_index_is_noticed_by_its_stamp_and_rebuilt(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    _log(ledger)
    # the denied decision relabelled: a filtered log would leave it out
    _tamper(ledger, "UPDATE chain SET outcome = 'approve' WHERE seq = 2", keep_stamp=False)
    assert [r["decision_id"] for r in _log(ledger, outcomes=["deny"])] == [ledger_kit.ids[1]]
    assert _rows(ledger)[1][3] == "deny"


@pytest.mark.parametrize("sql,filters,shown", [
    # a deny shown as an approval
    ("UPDATE chain SET outcome = 'approve' WHERE seq = 2", {"outcomes": ["approve"]}, [0]),
    # a path that is not in the ledger
    ("UPDATE chain SET entry_id = 'dec-forged', path = 'entries/000000/00000002-dec-forged.dsse.json' "
     "WHERE seq = 2", {}, [0, 1, 2]),
    # a decision shown under another model
    ("UPDATE chain SET model = 'other' WHERE seq = 1", {"model": "other"}, []),
    # an entry's time moved into the window
    ("UPDATE chain SET evaluated_us = 0 WHERE seq = 3", {"until": datetime(2000, 1, 1, tzinfo=UTC)}, []),
])
def test_a_tampered_row_is_caught_by_the_recheck_and_the_index_rebuilt(
        ledger_kit: LedgerKit, tmp_path: Path, sql: str, filters: dict[str, object], shown: list[int],
        caplog: pytest.LogCaptureFixture) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    truth = _log(ledger)
    _tamper(ledger, sql, keep_stamp=True)
    assert _log(ledger, **filters) == [truth[i] for i in shown]
    assert "rebuilding the index from git" in caplog.text
    assert _log(ledger) == truth


@pytest.mark.parametrize("damage", ["garbage", "no chain table"])
def test_a_damaged_index_file_is_rebuilt(ledger_kit: LedgerKit, tmp_path: Path, damage: str) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    truth = _log(ledger)
    if damage == "garbage":
        _index_file(ledger).write_bytes(b"not a database" * 100)
        _tamper_stamp(ledger)
    else:
        _tamper(ledger, "DROP TABLE chain", keep_stamp=True)
    assert _log(ledger) == truth
    assert len(_rows(ledger)) == 3


def test_a_row_still_wrong_after_the_rebuild_fails_closed(
        ledger_kit: LedgerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    _log(ledger)
    tamper = "UPDATE chain SET outcome = 'approve' WHERE seq = 2"
    _tamper(ledger, tamper, keep_stamp=True)
    original = ChainIndex.refresh

    def rebuild_then_tamper(self: ChainIndex, *, rebuild: bool = False) -> None:
        original(self, rebuild=rebuild)
        if rebuild:
            _tamper(ledger, tamper, keep_stamp=True)

    monkeypatch.setattr(ChainIndex, "refresh", rebuild_then_tamper)
    with pytest.raises(LedgerError, match="still disagrees with git"):
        _log(ledger, outcomes=["approve"])


def test_replay_finds_its_decision_through_the_index(ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    deny = ledger_kit.ids[1]
    with LedgerHistory(ledger) as history:
        assert resolve_decision(history, deny) == entry_path(2, deny)
        assert resolve_decision(history, deny[:12]) == entry_path(2, deny)
        with pytest.raises(LedgerError, match="no decision"):
            resolve_decision(history, "dec-not-recorded")
    # a forged row claiming the denied decision's id for the first entry is caught
    _tamper(ledger, "UPDATE chain SET entry_id = ? WHERE seq = 1", deny, keep_stamp=True)
    with LedgerHistory(ledger) as history:
        assert resolve_decision(history, deny) == entry_path(2, deny)
    assert _rows(ledger)[0][2] == ledger_kit.ids[0]
    r = slmgate("ledger", "replay", deny, "--ledger", ledger, "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["decision_id"] == deny


def test_a_ledger_folder_that_cannot_hold_an_index_is_read_from_git(
        ledger_kit: LedgerKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    truth = _git_only_log(ledger, monkeypatch)

    def refuse(self: ChainIndex, *, rebuild: bool = False) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(ChainIndex, "refresh", refuse)
    assert _log(ledger) == truth
    with LedgerHistory(ledger) as history:
        assert resolve_decision(history, ledger_kit.ids[2]) == entry_path(3, ledger_kit.ids[2])


def test_readers_and_a_writer_at_once_each_see_a_whole_prefix(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    ledger = ledger_kit.copy(tmp_path / "l")
    writer = Ledger(ledger, signing_key=ledger_kit.world.key("slmgate-gate"))
    failures: list[BaseException] = []
    # decided here, recorded by the thread (the policy engine stays on this thread)
    bundle = load_bundle(ledger_kit.world.policies)
    policy = CompiledPolicy(bundle)
    req = load_request(ledger_kit.requests[0])
    decided = []
    for i in range(4):
        result = evaluate_promotion(req, bundle, policy, now=NOW + timedelta(minutes=100 + i))
        decided.append((result.decision, sign_decision_record(result.decision,
                                                              ledger_kit.world.key("slmgate-gate"))))

    def append() -> None:
        try:
            for decision, record in decided:
                record_in_ledger(writer, decision, record, req, [e.raw for e in req.evidence], bundle)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=append)
    thread.start()
    seen = []
    while thread.is_alive() or len(seen) < 2:
        seqs = [r["seq"] for r in _log(ledger)]
        assert seqs == list(range(1, len(seqs) + 1))
        seen.append(len(seqs))
    thread.join()
    assert not failures
    assert [r["seq"] for r in _log(ledger)] == list(range(1, 8))
    assert _index.ChainIndex.open(LedgerHistory(ledger)) is not None
    assert verify_ledger(ledger, GateKeys.from_trust_file(ledger_kit.trust)).ok


def test_attestation_entries_are_indexed_as_links_of_the_chain_not_as_decisions(
        ledger_kit: LedgerKit, tmp_path: Path) -> None:
    from slmgate.engine.ledger._attestation import PendingAttestation

    ledger = ledger_kit.copy(tmp_path / "l")
    _log(ledger)
    writer = Ledger(ledger, signing_key=ledger_kit.world.key("slmgate-gate"))
    writer.record_pending(PendingAttestation("deployment-attestation", b'{"not": "checked here"}', "att"))
    new = record_promotions(ledger_kit.world, writer, [ledger_kit.requests[0]], minutes=120)
    assert [r["decision_id"] for r in _log(ledger)] == [*ledger_kit.ids, *new]
    assert [r[1] for r in _rows(ledger)] == ["decision"] * 3 + ["attestation", "decision"]
    with LedgerHistory(ledger) as history:
        assert resolve_decision(history, new[0]) == entry_path(5, new[0])
