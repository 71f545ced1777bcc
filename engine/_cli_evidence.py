"""`slmgate evidence ...` and `slmgate keys ...`: hash weights, sign, verify, make keys."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from slmgate.evidence import (
    PREDICATE_TYPES,
    Envelope,
    PublicKey,
    SigningKey,
    Statement,
    TrustedIdentity,
    TrustPolicy,
    VerificationResult,
    parse_time,
    sign_envelope,
    verify_envelope,
    write_atomic,
    write_key_pair,
)
from slmgate.evidence.errors import EvidenceInvalid, InputError

from . import _decision as exits
from ._cli_common import FORMAT, emit, guarded


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
    """Sign an in-toto Statement (JSON) into a DSSE envelope, bytes as they are on disk."""
    try:
        raw = statement.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(statement)) from exc
    try:
        parsed = Statement.parse(raw)
    except EvidenceInvalid as exc:
        raise InputError(exc.message, file=str(statement)) from exc
    signers = [SigningKey.load(k) for k in keys]
    write_atomic(output, sign_envelope(raw, signers).to_json())
    click.echo(f"signed {parsed.kind} about {parsed.subjects[0][0]} with "
               f"{len(signers)} key(s) -> {output}")


@evidence.command("verify")
@click.argument("envelope", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path), default=None, help="One trusted public key.")
@click.option("--trust", type=click.Path(path_type=Path), default=None,
              help="A trust policy (trust.yaml); its key paths are relative to its folder.")
@click.option("--subject", default=None, metavar="sha256:HEX",
              help="Require the statement to be about these weights (recommended).")
@click.option("--at", "at", default=None, metavar="RFC3339", help="Verify as of this time.")
@FORMAT
@guarded
def evidence_verify(envelope: Path, key: Path | None, trust: Path | None, subject: str | None,
                    at: str | None, fmt: str) -> None:
    """Verify one envelope; exit 0 when verified, 4 with the failing step otherwise."""
    from ._bundle import _validate
    from ._yamldoc import load_yaml

    if (key is None) == (trust is None):
        raise InputError("give exactly one of --key or --trust")
    try:
        raw = envelope.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=str(envelope)) from exc
    now = parse_time(at, what="--at") if at else datetime.now(UTC)
    if key is not None:
        pub = PublicKey.load(key)
        policy = TrustPolicy(
            identities=(TrustedIdentity(key.stem, "service", key.stem, pub, frozenset(PREDICATE_TYPES)),),
            max_age={k: timedelta(days=36500) for k in PREDICATE_TYPES},
        )
    else:
        assert trust is not None
        doc = load_yaml(trust)
        data, problems = _validate(doc, "trust")
        if problems:
            raise InputError("; ".join(map(str, problems)), file=str(trust))
        policy = TrustPolicy.from_document(data, base_dir=trust.parent, source=str(trust))
    want = subject.removeprefix("sha256:") if subject else None
    if want is None:
        try:
            want = Statement.parse(Envelope.from_json(raw).payload).subjects[0][1]
        except EvidenceInvalid:
            want = ""
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
    private, public = out / f"{name}.key", out / f"{name}.pub"
    for p in (private, public):
        if p.exists():
            raise InputError("already exists; slmgate never overwrites a key", file=str(p))
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    write_key_pair(key, private, public)
    click.echo(f"{public} (keyid {key.keyid})\n{private} (private, mode 0600)")

