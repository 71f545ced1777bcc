"""The cache of validated bundles: a bundle read from it is the bundle validation gives; any
changed byte of the bundle is a miss; nothing invalid is kept; an entry that others may have
written is never read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slmgate.engine.policy import _bundle, _bundle_cache
from slmgate.engine.policy._bundle import BundleInvalid, PolicyBundle, load_bundle
from tests.conftest import World


@pytest.fixture
def policies(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLMGATE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "policies"
    shutil.copytree(world.policies, root, ignore=shutil.ignore_patterns(".git"))
    return root


def _entries(policies: Path) -> list[Path]:
    folder = policies.parent / "cache" / "bundles"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _validations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = _bundle._validated

    def counted(root: Path, *args: object) -> object:
        seen.append(root)
        return real(root, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_bundle, "_validated", counted)
    return seen


def _same(a: PolicyBundle, b: PolicyBundle) -> None:
    assert a.digest == b.digest and dict(a.files) == dict(b.files)
    assert a.data == b.data and a.rego_modules == b.rego_modules and a.tests == b.tests
    assert a.trust.identities == b.trust.identities


def test_a_bundle_from_the_cache_is_the_bundle_validation_gives(policies: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    validations = _validations(monkeypatch)
    first = load_bundle(policies)
    assert len(_entries(policies)) == 1 and len(validations) == 1
    again = load_bundle(policies)
    assert len(validations) == 1  # read from the cache
    _same(first, again)


@pytest.mark.parametrize("where", ["gates.yaml", "rego/promotion.rego", "key"])
def test_any_changed_byte_is_a_miss(policies: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    before = load_bundle(policies)
    validations = _validations(monkeypatch)
    keys = sorted(p for p in before.files if not p.endswith((".yaml", ".rego")))
    path = policies / (keys[0] if where == "key" else where)
    path.write_bytes(path.read_bytes() + b"\n")
    after = load_bundle(policies)
    assert validations == [policies]
    assert after.digest != before.digest
    assert after.files[path.relative_to(policies).as_posix()].endswith(b"\n")


def test_an_invalid_bundle_is_never_kept(policies: Path) -> None:
    gates = policies / "gates.yaml"
    gates.write_text(gates.read_text() + "\nunknown_field: 1\n")
    with pytest.raises(BundleInvalid):
        load_bundle(policies)
    assert _entries(policies) == []


def test_an_entry_others_may_write_is_not_read(policies: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    validated = load_bundle(policies)
    [entry] = _entries(policies)
    doc = json.loads(entry.read_bytes())
    doc["data"]["gates"]["eval"]["regression"]["accuracy"]["min"] = 0.0  # a forged threshold
    entry.write_text(json.dumps(doc))
    # the user's own entry is read, as ssh reads the user's own keys
    assert load_bundle(policies).data["gates"]["eval"]["regression"]["accuracy"]["min"] == 0.0
    validations = _validations(monkeypatch)
    entry.chmod(0o664)
    assert load_bundle(policies).data == validated.data
    assert validations == [policies]
    entry.chmod(0o600)
    entry.parent.chmod(0o777)
    assert load_bundle(policies).data == validated.data
    assert len(validations) == 2


def test_an_unreadable_entry_is_a_miss(policies: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    validated = load_bundle(policies)
    [entry] = _entries(policies)
    validations = _validations(monkeypatch)
    bad_date = json.dumps({**json.loads(entry.read_bytes()), "dates": [[["x"], "date", "?"]]})
    for text in ("", "{", '{"format": 1}', bad_date):
        entry.write_text(text)
        entry.chmod(0o600)
        _same(load_bundle(policies), validated)
    assert len(validations) == 4


@pytest.mark.parametrize("setting", ["", None])
def test_the_cache_is_off_unless_a_folder_is_named(policies: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, setting: str | None) -> None:
    """Off by default: an entry decides what the gate's policy validated to, so no folder is used
    (not even ~/.cache) unless the operator names one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if setting is None:
        monkeypatch.delenv("SLMGATE_CACHE_DIR", raising=False)
    else:
        monkeypatch.setenv("SLMGATE_CACHE_DIR", setting)
    assert _bundle_cache.cache_dir() is None
    validations = _validations(monkeypatch)
    load_bundle(policies)
    load_bundle(policies)
    assert validations == [policies, policies]
    assert not (tmp_path / "home").exists() and not (tmp_path / "xdg").exists()


def test_dates_read_back_as_dates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, date, datetime

    monkeypatch.setenv("SLMGATE_CACHE_DIR", str(tmp_path))
    data = {"a": [{"d": date(2026, 1, 2)}, datetime(2026, 1, 2, 3, 4, tzinfo=UTC)], "b": 1.5}
    _bundle_cache.store("sha256:00", digest="sha256:11", keys=[], data=data)
    assert _bundle_cache.lookup("sha256:00")["data"] == data  # type: ignore[index]


def test_another_validating_code_is_a_miss(policies: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle cached by one version of slmgate is validated again by another."""
    load_bundle(policies)
    validations = _validations(monkeypatch)
    real = _bundle._validating_code
    monkeypatch.setattr(_bundle, "_validating_code", lambda: real() + b" another version")
    load_bundle(policies)
    assert validations == [policies]
    assert len(_entries(policies)) == 2
