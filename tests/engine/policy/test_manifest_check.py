"""The weights manifest's own check (its resources hash to its subject), remembered per verified
statement bytes that passed: one byte apart is checked for itself, and a failure is never
remembered as a pass."""

from __future__ import annotations

import pytest

from slmgate.engine.policy import _evaluate
from slmgate.engine.policy._evaluate import _check_manifest
from slmgate.evidence import Statement, VerifiedEvidence, hash_model_dir, make_statement
from slmgate.evidence.errors import ManifestMismatchError
from tests.conftest import MODEL, World


def _manifest(world: World, subject: str | None = None) -> VerifiedEvidence:
    manifest = hash_model_dir(world.candidate, model_name=MODEL)
    raw = make_statement(MODEL, subject or manifest.root_digest, "weights-manifest",
                         manifest.to_predicate("2026-11-02T08:00:00Z"))
    return VerifiedEvidence("weights-manifest", Statement.parse(raw), (), "")


def test_a_manifest_about_other_weights_is_refused_each_time(world: World) -> None:
    good = _manifest(world)
    digest = good.statement.subjects[0][1]
    other = _manifest(world, digest[:-1] + ("0" if digest[-1] != "0" else "1"))
    assert sum(a != b for a, b in zip(good.statement.raw, other.statement.raw, strict=True)) == 1
    for _ in range(2):
        _check_manifest(good)
        assert good.statement.raw in _evaluate._MANIFESTS_PASSED
        with pytest.raises(ManifestMismatchError, match="hash to"):
            _check_manifest(other)
        assert other.statement.raw not in _evaluate._MANIFESTS_PASSED
