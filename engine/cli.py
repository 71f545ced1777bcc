"""The `slmgate` command line. Results go to stdout, logs and progress to stderr; every error
is mapped to an exit code in one place (``_exit_code``)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

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
    hash_model_dir,
    parse_time,
    sign_envelope,
    verify_envelope,
    write_atomic,
    write_key_pair,
)
from slmgate.evidence.errors import EvidenceInvalid, InputError, SlmgateError

from . import _decision as exits

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("slmgate")

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="How results are printed on stdout.")
POLICIES = click.option(
    "--policies", "policies", type=click.Path(path_type=Path), envvar="SLMGATE_POLICIES",
    default=Path("policies"), show_default=True,
    help="Policy repository (charter.yaml, tiers.yaml, trust.yaml, rego/ ...). Env: SLMGATE_POLICIES.",
)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, InputError):
        return exits.EXIT_INVALID_INPUT
    return exits.EXIT_UNVERIFIED  # evidence, policy and internal errors: never an approval


def _fail(exc: BaseException) -> NoReturn:
    if isinstance(exc, SlmgateError):
        click.echo(f"error: {exc.diagnostics()}", err=True)
    else:
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        if os.environ.get("SLMGATE_DEBUG"):
            raise exc
    sys.exit(_exit_code(exc))


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            _fail(exc)

    return wrapper


def _emit(fmt: str, doc: Any, text: str) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True) if fmt == "json" else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log verification steps to stderr.")
@click.version_option(package_name="slmgate")
def main(verbose: bool) -> None:
    """slmgate: the policy gate for promoting small language models.

    \b
    Exit codes of `promote` (and every command that decides):
      0 approved   1 denied   2 bad usage or invalid input (nothing written)
      3 human review required   4 verification or internal error (a denial)
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="slmgate: %(message)s", stream=sys.stderr)


# ------------------------------------------------------------------------------------ demo


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True,
              help="Output folder; replaced if it holds an earlier demo, refused otherwise.")
@FORMAT
@guarded
def demo(out: Path, fmt: str) -> None:
    """Run the whole main path on the embedded defaults (no server, no network).

    Lays out a policy repository with fresh keys, trains a baseline and two candidate models
    on the CPU, signs evidence about them, and runs four promotions: approved, denied for a
    stress regression, denied for tampered evidence, and held for human sign-off. Each decision
    goes to a git ledger and a PDF packet.
    """
    from ._demo import run_demo

    results = run_demo(out)
    lines = ["", f"slmgate demo — {len(results)} promotions through the gate", ""]
    for r in results:
        d = r.decision
        lines.append(f"  {r.name:<26} {d.outcome.upper():<8} exit {d.exit_code}  ({r.story})")
        lines.append(f"  {'':<26} {d.summary()}")
        for f in [f for f in d.findings if f["severity"] != "info"][:3]:
            lines.append(f"  {'':<26}   - {f['rule_id']}: {f['message']}")
        lines.append(f"  {'':<26} packet: {r.packet}")
    lines += ["", f"  ledger:   {out / 'ledger'}  (git log there shows one commit per decision)",
              f"  policies: {out / 'policy-repo'}", f"  summary:  {out / 'summary.json'}"]
    _emit(fmt, json.loads((out / "summary.json").read_text()), "\n".join(lines))


# ------------------------------------------------------------------------------------ init


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--secrets", type=click.Path(path_type=Path), default=None,
              help="Where private keys go (mode 0600). Default: DIRECTORY-secrets beside it.")
@click.option("--algorithm", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519",
              show_default=True)
@guarded
def init(directory: Path, secrets: Path | None, algorithm: str) -> None:
    """Scaffold a policy repository from the default bundle, with fresh keys."""
    from ._scaffold import init_policy_repo

    secrets = secrets or directory.with_name(directory.name + "-secrets")
    private = init_policy_repo(directory, secrets, algorithm=algorithm)
    click.echo(f"policy repository: {directory} (git, one commit)")
    for name, path in private.items():
        click.echo(f"  {name:<16} private key {path}")
    click.echo("keep the private keys out of the policy repository; move them to your vault")


# ------------------------------------------------------------------------------------ policy


@main.group()
def policy() -> None:
    """Validate, test and show the policy bundle."""


@policy.command("check")
@POLICIES
@FORMAT
@guarded
def policy_check(policies: Path, fmt: str) -> None:
    """Validate every YAML file and compile the Rego; report all problems at once (exit 2)."""
    from ._bundle import load_bundle
    from ._policy import CompiledPolicy

    bundle = load_bundle(policies)
    CompiledPolicy(bundle)
    _emit(fmt, {"ok": True, "digest": bundle.digest, "revision": bundle.revision},
          f"OK: {policies} is valid ({bundle.digest}, revision {bundle.revision or 'none'})")


@policy.command("test")
@POLICIES
@FORMAT
@guarded
def policy_test(policies: Path, fmt: str) -> None:
    """Run the policy test cases (tests/*.yaml) through the compiled decision entrypoint."""
    from ._bundle import load_bundle
    from ._policy import CompiledPolicy
    from ._policytest import run_policy_tests

    bundle = load_bundle(policies)
    results = run_policy_tests(bundle, CompiledPolicy(bundle))
    failed = [r for r in results if not r.passed]
    lines = [f"{'PASS' if r.passed else 'FAIL'}: {r.file}: {r.name}"
             + "".join(f"\n    {p}" for p in r.problems) for r in results]
    lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    _emit(fmt, [r.__dict__ for r in results], "\n".join(lines))
    if failed:
        sys.exit(exits.EXIT_DENIED)


@policy.command("show")
@click.argument("what", type=click.Choice(["tiers", "gates", "charter", "purposes", "subprocessors",
                                           "waivers"]))
@POLICIES
@FORMAT
@guarded
def policy_show(what: str, policies: Path, fmt: str) -> None:
    """Print one part of the bundle; `tiers` is the published approval-tier table."""
    from ._bundle import load_bundle

    data = load_bundle(policies).data[what]
    if fmt == "json" or what != "tiers":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    tiers = data["tiers"]
    click.echo("Approval tiers (a change takes the heaviest tier of its change classes)\n")
    for name, t in sorted(tiers.items(), key=lambda kv: kv[1]["rank"]):
        approvals = ", ".join(f"{a['count']}× {a['role']}" for a in t["approvals"])
        approvals = approvals or "none (CAB pre-approved)"
        click.echo(f"{name}: {t['description']}\n  evidence:  {', '.join(t['requires_evidence'])}"
                   f"\n  approvals: {approvals}")
        classes = [c for c, v in data["change_classes"].items() if v["tier"] == name]
        click.echo(f"  changes:   {', '.join(classes) or '—'}\n")


# ------------------------------------------------------------------------------------ promote


def _decision_text(d: exits.Decision) -> str:
    model = d.request["model"]
    lines = [f"{d.outcome.upper()}: {model['name']} {model['version']} ({d.tier} tier) — {d.summary()}",
             f"  decision {d.id} under {d.bundle_digest} (revision {d.policy_revision or 'none'})"]
    for r in d.evidence:
        mark = "ok  " if r.verified else "FAIL"
        detail = ", ".join(r.signers) if r.verified else f"{r.failed_step}: {r.reason}"
        lines.append(f"  evidence {mark} {r.ref}: {detail}")
    for f in d.findings:
        lines.append(f"  {f['severity']:<6} {f['rule_id']}: {f['message']}")
    for a in d.approvals_needed:
        lines.append(f"  needs  {a['count']}× {a['role']} approval")
    return "\n".join(lines)


@main.command()
@click.argument("request", type=click.Path(path_type=Path))
@POLICIES
@click.option("--ledger", type=click.Path(path_type=Path), default=None,
              help="Record the signed decision in this git ledger (created if absent).")
@click.option("--signing-key", type=click.Path(path_type=Path), envvar="SLMGATE_GATE_KEY",
              default=None, help="The gate's private key for the decision record. Env: SLMGATE_GATE_KEY.")
@click.option("--packet", type=click.Path(path_type=Path), default=None,
              help="Write the auditor packet (PDF/A-3b) here.")
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="Evaluate as of this time instead of now (replays, reproducible tests).")
@FORMAT
@guarded
def promote(request: Path, policies: Path, ledger: Path | None, signing_key: Path | None,
            packet: Path | None, at: str | None, fmt: str) -> None:
    """Verify the evidence of REQUEST, evaluate the policy, record and report. The exit code is
    the gate: 0 approved, 1 denied, 2 invalid input, 3 review required, 4 could not verify."""
    from ._bundle import load_bundle
    from ._ledger import Ledger
    from ._packet_content import packet_attachments, packet_content
    from ._policy import CompiledPolicy
    from ._promote import evaluate_promotion, record_in_ledger, sign_decision_record
    from ._request import load_request
    from .packet import render_packet

    try:
        now = parse_time(at, what="--at") if at else None
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if ledger and not signing_key:
        raise InputError("--ledger needs --signing-key (the gate signs every decision record)")
    req = load_request(request)
    bundle = load_bundle(policies)
    key = SigningKey.load(signing_key) if signing_key else None
    ledger_db = Ledger(ledger) if ledger else None
    result = evaluate_promotion(req, bundle, CompiledPolicy(bundle), now=now)
    decision = result.decision
    record = sign_decision_record(decision, key) if key else None
    entry = None
    if ledger_db and record:
        entry = record_in_ledger(ledger_db, decision, record, req, [e.raw for e in req.evidence])
    if packet:
        render_packet(packet_content(decision, result.facts, bundle, result.verified),
                      packet_attachments(req, record, decision), packet)
    doc = decision.to_json()
    text = _decision_text(decision)
    if entry:
        doc["ledger_commit"] = entry.commit
        text += f"\n  recorded in {ledger} at {entry.commit[:12]}"
    if packet:
        text += f"\n  packet: {packet}"
    _emit(fmt, doc, text)
    sys.exit(decision.exit_code)


# ------------------------------------------------------------------------------------ evidence


@main.group()
def evidence() -> None:
    """Hash weights, sign statements and verify envelopes."""


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
    _emit(fmt, doc, f"sha256:{manifest.root_digest}  {model_dir} ({len(manifest.resources)} files)")


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
        _emit(fmt, result.to_json(), f"FAIL: {envelope}: {exc.step}: {exc.message}")
        sys.exit(exits.EXIT_UNVERIFIED)
    result = VerificationResult.passed(ev)
    _emit(fmt, result.to_json(),
          f"OK: {envelope}: {ev.kind} about sha256:{result.subject_sha256} signed by "
          f"{', '.join(result.signers)} at {result.issued_at}")


# ------------------------------------------------------------------------------------ keys


@main.group()
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



if __name__ == "__main__":
    main(prog_name="slmgate")
