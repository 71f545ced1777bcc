"""`slmgate evidence ...` and `slmgate keys ...`: hash weights, sign, verify, make keys."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from slmgate.engine.cli._common import FORMAT, emit, guarded
from slmgate.engine.policy import _decision as exits
from slmgate.evidence import (
    PREDICATE_TYPES,
    PublicKey,
    SigningKey,
    Statement,
    TrustedIdentity,
    TrustPolicy,
    VerificationResult,
    check_predicate,
    parse_time,
    sign_envelope,
    verify_envelope,
    write_atomic,
    write_key_pair,
)
from slmgate.evidence.errors import EvidenceInvalid, InputError, PredicateSchemaError

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@click.group()
def evidence() -> None:
    """Hash weights, sign statements and verify envelopes."""


@evidence.command("sign")
@click.argument("statement", type=click.Path(path_type=Path))
@click.option("--key", "keys", type=click.Path(path_type=Path), multiple=True, required=True,
              help="Private key (repeat for several signatures).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@guarded
def evidence_sign(statement: Path, keys: tuple[Path, ...], output: Path) -> None:
    """Sign an in-toto Statement (JSON) into a DSSE envelope, bytes as they are on disk.

    The statement and its predicate are checked first (the predicate against its kind's JSON
    Schema): what slmgate would refuse to verify, it refuses to sign (exit 2)."""
    try:
        raw = statement.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(statement)) from exc
    try:
        parsed = Statement.parse(raw)
        check_predicate(parsed.kind, parsed.predicate)
    except PredicateSchemaError as exc:
        raise InputError(exc.message, file=str(statement), field=f"predicate.{exc.field}",
                         advice=exc.advice) from exc
    except EvidenceInvalid as exc:
        raise InputError(exc.message, file=str(statement)) from exc
    signers = [SigningKey.load(k) for k in keys]
    write_atomic(output, sign_envelope(raw, signers).to_json())
    click.echo(f"signed {parsed.kind} about {parsed.subjects[0][0]} "
               f"(sha256:{parsed.subjects[0][1]}) with key(s) "
               f"{', '.join(k.keyid[:16] for k in signers)} -> {output}")


def _subject(text: str) -> str:
    digest = text.removeprefix("sha256:").lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise InputError(f"expected sha256:<64 hex digits>, got {text!r}", field="--subject",
                         advice="`slmgate evidence hash MODEL_DIR` prints the root digest")
    return digest


def _single_key_policy(path: Path) -> TrustPolicy:
    """Trust one key for every predicate kind, with no maximum age (future dates still fail)."""
    pub = PublicKey.load(path)
    identity = TrustedIdentity(path.stem, "service", path.stem, pub, frozenset(PREDICATE_TYPES))
    return TrustPolicy(identities=(identity,),
                       max_age={kind: timedelta(days=36500) for kind in PREDICATE_TYPES})


@evidence.command("verify")
@click.argument("envelope", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path), default=None,
              help="Trust this one public key (PEM) for any predicate kind, with no maximum age.")
@click.option("--trust", type=click.Path(path_type=Path), default=None,
              help="A trust policy (trust.yaml); its key paths are relative to its folder.")
@click.option("--subject", default=None, metavar="sha256:HEX",
              help="Require the statement to be about these weights (recommended).")
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="Verify as of this time instead of now (validity windows, freshness).")
@FORMAT
@guarded
def evidence_verify(envelope: Path, key: Path | None, trust: Path | None, subject: str | None,
                    at: str | None, fmt: str) -> None:
    """Verify one envelope in the documented order. Exit 0 when verified, 4 with the failing
    step otherwise, 2 for bad usage (no or both of --key/--trust, unreadable files, bad --at)."""
    if (key is None) == (trust is None):
        raise InputError("give exactly one of --key or --trust")
    try:
        now = parse_time(at, what="--at") if at else datetime.now(UTC)
    except ValueError as exc:
        raise InputError(str(exc), field="--at",
                         advice="for example 2026-11-20T12:00:00Z") from exc
    want = _subject(subject) if subject else None
    try:
        raw = envelope.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(envelope)) from exc
    if key is not None:
        policy = _single_key_policy(key)
    else:
        assert trust is not None
        from slmgate.engine.policy._bundle import load_trust_policy

        policy = load_trust_policy(trust)
    if want is None:
        click.echo("warning: no --subject; the statement is not bound to any weights here", err=True)
    try:
        ev = verify_envelope(raw, policy, subject_sha256=want, now=now, ref=envelope.name)
    except EvidenceInvalid as exc:
        result = VerificationResult.failed(envelope.name, raw, exc)
        emit(fmt, result.to_json(), f"FAIL: {envelope}: {exc.step}: {exc.message}")
        sys.exit(exits.EXIT_UNVERIFIED)
    result = VerificationResult.passed(ev)
    emit(fmt, result.to_json(),
         f"OK: {envelope}: {ev.kind} about sha256:{result.subject_sha256} signed by "
         f"{', '.join(result.signers)} at {result.issued_at}")


# ------------------------------------------------------------------------------------ keys


@click.group()
def keys() -> None:
    """Generate signing keys."""


@keys.command("generate")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for NAME.key/.pub")
@click.option("--algorithm", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519",
              show_default=True)
@guarded
def keys_generate(name: str, out: Path, algorithm: str) -> None:
    """Write NAME.key (private, mode 0600) and NAME.pub (PEM); refuse to overwrite."""
    if not _KEY_NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a key name", field="NAME",
                         advice="letters, digits, '.', '_' and '-', starting with a letter or digit")
    private, public = out / f"{name}.key", out / f"{name}.pub"
    for p in (private, public):
        if p.exists():
            raise InputError("already exists; slmgate never overwrites a key", file=str(p))
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    write_key_pair(key, private, public)
    click.echo(f"{public} (keyid {key.keyid})\n{private} (private, mode 0600)")

