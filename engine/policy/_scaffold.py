"""`slmgate init`: a policy repository laid out from the default bundle, with fresh keys."""

from __future__ import annotations

import os
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
    in ``dest/keys``, private key in ``secrets``, mode 0600, created ``O_EXCL|O_NOFOLLOW``; a
    new ``secrets`` folder is made 0700; an existing key there is refused before anything is
    written) and commit it as a git repository.
    Returns identity name -> private key path."""
    if dest.exists() and any(dest.iterdir()):
        raise InputError("destination exists and is not empty", file=str(dest),
                         advice="choose a new directory; slmgate init never overwrites")
    source = default_policies()
    names = list(yaml.safe_load((source / "trust.yaml").read_text())["identities"])
    taken = [secrets / f"{name}.key" for name in names if os.path.lexists(secrets / f"{name}.key")]
    if taken:  # checked before anything is written
        raise InputError(f"already exists; slmgate init never overwrites a key "
                         f"({', '.join(p.name for p in taken)})", file=str(taken[0]),
                         advice="choose another --secrets folder, or move the existing keys away")
    if not secrets.exists():
        secrets.parent.mkdir(parents=True, exist_ok=True)
        secrets.mkdir(mode=0o700)
        os.chmod(secrets, 0o700)  # whatever the umask
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
        try:
            write_key_pair(key, private[name], dest / ident["public_key"])
        except FileExistsError as exc:  # appeared since the check above
            raise InputError("already exists; slmgate init never overwrites a key",
                             file=exc.filename) from exc
    repo = git.Repo.init(dest, initial_branch="main")
    repo.index.add([p.relative_to(dest).as_posix() for p in sorted(dest.rglob("*"))
                    if p.is_file() and ".git" not in p.relative_to(dest).parts])
    repo.index.commit("policy bundle: initial import from slmgate defaults",
                      author=_AUTHOR, committer=_AUTHOR)
    return private
