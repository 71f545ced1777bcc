"""`slmgate evidence hash|capture|eval|import`: the runtime-side producers of evidence."""

from __future__ import annotations

from pathlib import Path

import click

from slmgate.evidence import hash_model_dir

from ._cli_common import FORMAT, emit, guarded
from ._cli_evidence import evidence


@evidence.command("hash")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Model name for the manifest (default: folder name).")
@FORMAT
@guarded
def evidence_hash(model_dir: Path, name: str | None, fmt: str) -> None:
    """Hash a model directory into a manifest; print its root digest (json: the manifest)."""
    manifest = hash_model_dir(model_dir, model_name=name)
    doc = {"model_name": manifest.model_name, "root_digest": f"sha256:{manifest.root_digest}",
           "resources": [r.__dict__ for r in manifest.resources]}
    emit(fmt, doc, f"sha256:{manifest.root_digest}  {model_dir} ({len(manifest.resources)} files)")
