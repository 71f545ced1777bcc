"""The ledger: one commit per decision, envelopes content-addressed, refuses non-ledgers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import git
import pytest

from slmgate.engine import Ledger
from slmgate.evidence.errors import InputError


def test_records_one_commit_per_decision_and_stores_envelopes_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    env = b'{"payload": "x"}'
    first = ledger.record("dec-1", b"record-1", b"request-1", [env], "approve: m 1")
    second = ledger.record("dec-2", b"record-2", b"request-2", [env], "deny: m 2")
    repo = git.Repo(tmp_path / "ledger")
    assert [c.hexsha for c in repo.iter_commits()][:2] == [second.commit, first.commit]
    stored = tmp_path / "ledger" / "evidence" / "sha256" / f"{hashlib.sha256(env).hexdigest()}.dsse.json"
    assert stored.read_bytes() == env
    assert (tmp_path / "ledger" / "decisions" / "dec-2.dsse.json").read_bytes() == b"record-2"
    assert not repo.is_dirty(untracked_files=True)


def test_the_same_decision_cannot_be_recorded_twice(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    ledger.record("dec-1", b"r", b"q", [], "m")
    with pytest.raises(InputError, match="already recorded"):
        ledger.record("dec-1", b"r2", b"q", [], "m")


def test_a_folder_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(InputError, match="not a slmgate ledger"):
        Ledger(tmp_path / "notes")
    git.Repo.init(tmp_path / "repo")
    (tmp_path / "repo" / "f").write_text("x")
    with pytest.raises(InputError, match="marker"):
        Ledger(tmp_path / "repo")
