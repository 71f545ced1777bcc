"""Which files an auditor packet carries, under which names: the signed decision record, the
request, every envelope by ref, the gate's seal over the pages (when the packet was sealed), and
the policy bundle as decided under ``policy-bundle/`` with paths relative to its root — exactly
the files its digest covers, so ``load_bundle`` on them reproduces ``bundle.digest``."""

from __future__ import annotations

from slmgate.engine.policy._bundle import PolicyBundle

__all__ = ["BUNDLE_PREFIX", "RECORD_NAME", "REQUEST_NAME", "SEAL_NAME", "bundle_files", "evidence_name"]

RECORD_NAME = "decision-record.dsse.json"
REQUEST_NAME = "request.json"
SEAL_NAME = "packet-seal.dsse.json"
BUNDLE_PREFIX = "policy-bundle/"


def evidence_name(ref: str) -> str:
    return f"evidence/{ref}.dsse.json"


def bundle_files(bundle: PolicyBundle) -> list[tuple[str, bytes]]:
    """(path relative to the bundle root, bytes) for every file the bundle digest covers, as
    they were read when the bundle was loaded (``PolicyBundle.files``)."""
    return sorted(bundle.files.items())
