"""`slmgate init`: a key is never overwritten, never written through a link, and the secrets
folder is private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from click.testing import CliRunner

from slmgate.engine.cli import main


def _init(*args: str | Path) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["init", *map(str, args)])
    return r.exit_code, r.output


def test_secrets_folder_is_created_0700_and_keys_0600(tmp_path: Path) -> None:
    code, out = _init(tmp_path / "policies", "--secrets", tmp_path / "secrets")
    assert code == 0, out
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    for key in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_init_with_existing_secrets_never_overwrites_a_key(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    existing = secrets / "slmgate-gate.key"
    existing.write_bytes(b"the gate key production signs with\n")
    code, out = _init(tmp_path / "policies", "--secrets", secrets)
    assert code == 2, out
    assert "slmgate-gate.key" in out and "overwrite" in out
    assert existing.read_bytes() == b"the gate key production signs with\n"
    assert sorted(p.name for p in secrets.iterdir()) == ["slmgate-gate.key"]  # nothing else written
    assert not (tmp_path / "policies").exists()


def test_a_key_is_never_written_through_a_link(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    os.symlink(target, secrets / "ml-lead.key")
    code, out = _init(tmp_path / "policies", "--secrets", secrets)
    assert code == 2, out
    assert target.read_text() == "not yours"
    os.unlink(secrets / "ml-lead.key")
    os.symlink(tmp_path / "dangling", secrets / "ml-lead.key")  # a link to nothing yet
    code, out = _init(tmp_path / "policies2", "--secrets", secrets)
    assert code == 2, out
    assert not (tmp_path / "dangling").exists()
