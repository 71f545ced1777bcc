"""`slmgate init`: a policy repository laid out from the default bundle, with fresh keys."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import git
import yaml

from slmgate.evidence import SigningKey, write_key_pair
from slmgate.evidence.errors import InputError

_AUTHOR = git.Actor("slmgate init", "slmgate@localhost")


def default_policies() -> Path:
    """The default bundle shipped with slmgate (the repository's ``policies/``)."""
    return Path(str(resources.files("slmgate.policies")))


def init_policy_repo(dest: Path, secrets: Path, *, algorithm: str = "ed25519") -> dict[str, Path]:
    """Copy the default bundle to ``dest``, generate one key pair per trust identity (public key
    in ``dest/keys``, private key in ``secrets``, mode 0600) and commit it as a git repository.
    Returns identity name -> private key path."""
    if dest.exists() and any(dest.iterdir()):
        raise InputError("destination exists and is not empty", file=str(dest),
                         advice="choose a new directory; slmgate init never overwrites")
    source = default_policies()
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        if item.name.startswith(("_", ".")) or item.name == "keys":
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif item.suffix == ".yaml":
            shutil.copy2(item, dest / item.name)
    trust = yaml.safe_load((dest / "trust.yaml").read_text())
    private: dict[str, Path] = {}
    for name, ident in trust["identities"].items():
        key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
        private[name] = secrets / f"{name}.key"
        write_key_pair(key, private[name], dest / ident["public_key"])
    repo = git.Repo.init(dest, initial_branch="main")
    repo.index.add([p.relative_to(dest).as_posix() for p in sorted(dest.rglob("*"))
                    if p.is_file() and ".git" not in p.relative_to(dest).parts])
    repo.index.commit("policy bundle: initial import from slmgate defaults",
                      author=_AUTHOR, committer=_AUTHOR)
    return private
