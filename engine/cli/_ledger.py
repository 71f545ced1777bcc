"""`slmgate ledger ...`: verify the ledger, replay one decision, re-evaluate history under a
changed bundle (what-if), read the decision log, export a decision (OSCAL, JUnit)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from slmgate.engine.cli._common import FORMAT, POLICIES, emit, guarded
from slmgate.engine.policy import _decision as exits
from slmgate.evidence import write_atomic
from slmgate.evidence.errors import EvidenceInvalid, InputError

log = logging.getLogger("slmgate")

LEDGER = click.option(
    "--ledger", "ledger_dir", type=click.Path(path_type=Path), envvar="SLMGATE_LEDGER", required=True,
    help="The ledger folder (a git repository written by `slmgate promote --ledger`). Env: SLMGATE_LEDGER.",
)


@click.group()
def ledger() -> None:
    """Audit the decision ledger: verify, record, replay, what-if, log, export.

    \b
    Exit codes: verify 0 intact / 4 a bad commit; record 0 recorded / 4 refused;
    replay 0 same / 1 differs;
    what-if 0 no decision flips / 1 some flip; 2 bad usage or not a ledger (nothing written).
    """


@ledger.command()
@LEDGER
@click.option("--trust", type=click.Path(path_type=Path), default=None,
              help="Trust policy whose decision-record signers are the gate keys.")
@click.option("--gate-key", "gate_keys", type=click.Path(path_type=Path), multiple=True,
              help="The gate's public key (PEM); repeatable.")
@click.option("--unsafe-allow-unsigned-chain", "unsigned", is_flag=True,
              help="Accept chain entries written without the gate key. Unsafe: a deleted decision "
                   "with the chain rebuilt after it is then not detected.")
@click.option("--checkpoint", "checkpoints", type=click.Path(path_type=Path), multiple=True,
              help="A signed checkpoint (`ledger checkpoint`, `promote --checkpoint-out`) kept "
                   "outside the ledger; repeatable. Fails if the ledger was cut back or rewritten.")
@click.option("--from", "from_checkpoint", type=click.Path(path_type=Path), default=None,
              metavar="CHECKPOINT.json",
              help="Incremental: trust the decisions a signed checkpoint saw (its signature is "
                   "checked under --trust/--gate-key, its commit must be an ancestor of HEAD "
                   "holding its head entry) and check only the commits after it.")
@FORMAT
@guarded
def verify(ledger_dir: Path, trust: Path | None, gate_keys: tuple[Path, ...], unsigned: bool,
           checkpoints: tuple[Path, ...], from_checkpoint: Path | None, fmt: str) -> None:
    """Check every commit: signatures under the root of trust you pass, every referenced file
    present and matching its digest, the chain unbroken; with --checkpoint, that the ledger still
    holds at least the decisions each checkpoint saw, with its head entry at its position; with
    --from, only the commits after that checkpoint. Exit 4 names the first bad commit or
    checkpoint."""
    from slmgate.engine.ledger._checkpoint import check_checkpoints, read_checkpoint
    from slmgate.engine.ledger._verify import GateKeys, Problem, VerifyReport, report_text, verify_ledger

    if bool(trust) == bool(gate_keys):
        raise InputError("pass the root of trust: exactly one of --trust TRUST.yaml or --gate-key PUB",
                         advice="never a key read from the ledger itself")
    gates = GateKeys.from_trust_file(trust) if trust else GateKeys.from_public_keys(gate_keys)
    read, unsigned_checkpoints = [], []
    for path in checkpoints:  # malformed: exit 2 before anything else; unsigned: a problem
        try:
            read.append(read_checkpoint(path, gates))
        except InputError:
            raise
        except EvidenceInvalid as exc:
            unsigned_checkpoints.append(exc.message)
    start = None
    if from_checkpoint is not None:  # malformed: exit 2; not signed by a gate key: exit 4
        try:
            start = read_checkpoint(from_checkpoint, gates)
        except EvidenceInvalid as exc:
            report = VerifyReport(str(ledger_dir), "HEAD", verified_from=str(from_checkpoint))
            report.problems.append(Problem(report.head, None, f"--from {exc.message}; nothing "
                                                              "verified from it"))
            emit(fmt, report.to_json(), report_text(report))
            sys.exit(exits.EXIT_UNVERIFIED)
    report = verify_ledger(ledger_dir, gates, allow_unsigned_chain=unsigned, since=start)
    report.problems.extend(Problem(report.head, None, m) for m in unsigned_checkpoints)
    check_checkpoints(report, read)
    emit(fmt, report.to_json(), report_text(report))
    sys.exit(0 if report.ok else exits.EXIT_UNVERIFIED)


@ledger.command()
@LEDGER
@click.option("--signing-key", type=click.Path(path_type=Path), envvar="SLMGATE_GATE_KEY",
              required=True, help="The gate's private key. Env: SLMGATE_GATE_KEY.")
@click.option("--trust", type=click.Path(path_type=Path), default=None,
              help="Verify the ledger under this trust policy first (default: the signing key's "
                   "public key alone, which fails once the gate key was rotated).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where the signed checkpoint goes (keep it outside the ledger's reach).")
@click.option("--at", "at", default=None, metavar="RFC3339", help="The checkpoint time (default: now).")
@FORMAT
@guarded
def checkpoint(ledger_dir: Path, signing_key: Path, trust: Path | None, output: Path,
               at: str | None, fmt: str) -> None:
    """Sign a checkpoint of the ledger: its number of decisions, its head entry's sha256 and the
    time. The ledger is verified first; a ledger that does not verify is never checkpointed
    (exit 4). Keep checkpoints where the ledger's writers cannot reach (CI artifacts)."""
    from datetime import UTC, datetime

    from slmgate.engine.ledger._checkpoint import ledger_checkpoint
    from slmgate.engine.ledger._verify import GateKeys, report_text, verify_ledger
    from slmgate.evidence import PublicKey, SigningKey, parse_time

    key = SigningKey.load(signing_key)
    try:
        now = parse_time(at, what="--at") if at else datetime.now(UTC).replace(microsecond=0)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    gates = (GateKeys.from_trust_file(trust) if trust else
             GateKeys(((PublicKey.from_pem(key.public_key.to_pem()), None, None),)))
    report = verify_ledger(ledger_dir, gates)
    if not report.ok:
        emit(fmt, report.to_json(), report_text(report) + "\nno checkpoint written")
        sys.exit(exits.EXIT_UNVERIFIED)
    write_atomic(output, ledger_checkpoint(ledger_dir, key, now, decisions=report.decisions,
                                           head_entry=report.head_entry))
    emit(fmt, {"checkpoint": str(output), "decisions": report.decisions,
               "head_entry": report.head_entry},
         f"checkpoint: {output} ({report.decisions} decision(s), head entry {report.head_entry})")


@ledger.command()
@click.argument("envelope", type=click.Path(path_type=Path))
@LEDGER
@POLICIES
@click.option("--trust", type=click.Path(path_type=Path), default=None,
              help="Verify the envelope under this trust policy [default: trust.yaml of --policies].")
@click.option("--signing-key", type=click.Path(path_type=Path), envvar="SLMGATE_GATE_KEY",
              default=None, help="The gate's private key, which signs the chain entry (without "
                                 "it the entry is unsigned and `ledger verify` refuses it). "
                                 "Env: SLMGATE_GATE_KEY.")
@FORMAT
@guarded
def record(envelope: Path, ledger_dir: Path, policies: Path, trust: Path | None,
           signing_key: Path | None, fmt: str) -> None:
    """Verify ENVELOPE (an ops-metrics statement, `slmgate ops import`) against the trust
    policy — signature, the signer allowed to sign it, key validity, revocation, schema,
    freshness — and commit it to the ledger as an attestation entry of the hash chain, which
    `ledger verify` checks like any other. Exit 0 recorded; 4 the envelope did not verify
    (nothing written); 2 bad input (unreadable, not a kind the ledger records this way,
    already recorded)."""
    from datetime import UTC, datetime

    from slmgate.engine.ledger._store import Ledger, open_repo
    from slmgate.engine.ops._record import verified_attestation
    from slmgate.engine.policy._bundle import load_trust_policy
    from slmgate.evidence import SigningKey

    key = SigningKey.load(signing_key) if signing_key else None
    open_repo(ledger_dir).close()  # an existing ledger only: a mistyped path is not a new ledger
    trust_policy = load_trust_policy(trust or policies / "trust.yaml")
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        verified, pending = verified_attestation(envelope, trust_policy, now)
    except EvidenceInvalid as exc:
        emit(fmt, {"recorded": False, "envelope": str(envelope), "step": exc.step,
                   "message": exc.message},
             f"FAIL: {envelope}: {exc.step}: {exc.message}; nothing recorded")
        sys.exit(exits.EXIT_UNVERIFIED)
    if key is None:
        log.warning("no --signing-key: the chain entry is unsigned; `ledger verify` refuses it "
                    "unless told the chain may be unsigned")
    entry = Ledger(ledger_dir, signing_key=key).record_pending(pending)
    signers = ", ".join(s.name for s in verified.signers)
    emit(fmt, {"recorded": True, "envelope": str(envelope), "kind": verified.kind,
               "attestation": entry.decision_id, "commit": entry.commit, "seq": entry.seq,
               "signers": [s.name for s in verified.signers]},
         f"OK: {verified.kind} signed by {signers} recorded as {entry.decision_id} "
         f"(entry {entry.seq}, commit {entry.commit[:12]})")


@ledger.command()
@click.argument("decision_id")
@LEDGER
@FORMAT
@guarded
def replay(decision_id: str, ledger_dir: Path, fmt: str) -> None:
    """Re-evaluate DECISION_ID (or a unique prefix) from what the ledger recorded, under the
    bundle and at the time it was decided; exit 0 when the same, 1 when it differs."""
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._replay import replay as replay_decision

    with LedgerHistory(ledger_dir) as history:
        result = replay_decision(history, decision_id)
    emit(fmt, result.to_json(), result.text())
    sys.exit(0 if result.same else 1)


@ledger.command("what-if")
@LEDGER
@POLICIES
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes, each compiling the bundle once  [default: one per CPU; "
                   "a ledger of 200 decisions or fewer is re-evaluated in one process]")
@FORMAT
@guarded
def what_if(ledger_dir: Path, policies: Path, jobs: int | None, fmt: str) -> None:
    """Re-evaluate every recorded promotion under the bundle at --policies, each at its own
    recorded time, and report which decisions flip and by which rules; exit 1 if any flips."""
    from slmgate.engine.ledger._whatif import what_if as run

    def progress(done: int, total: int) -> None:
        log.info("what-if: %d/%d decisions", done, total)

    report = run(ledger_dir, policies, jobs=jobs, progress=progress)
    emit(fmt, report.to_json(), report.text())
    sys.exit(1 if report.flips else 0)


@ledger.command("log")
@LEDGER
@click.option("--model", default=None, help="Only this model name.")
@click.option("--outcome", "outcomes", type=click.Choice(["approve", "review", "deny"]), multiple=True,
              help="Only these outcomes; repeatable.")
@click.option("--since", default=None, metavar="DATE|RFC3339", help="Decided at or after (UTC).")
@click.option("--until", default=None, metavar="DATE|RFC3339", help="Decided at or before (UTC).")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True,
              help="One line per decision, or one JSON object per line.")
@guarded
def log_command(ledger_dir: Path, model: str | None, outcomes: tuple[str, ...], since: str | None,
                until: str | None, fmt: str) -> None:
    """The decision history, oldest first, with fields masked where each decision's bundle says
    so (charter.yaml decision_log.mask). Filters are answered by the ledger's index
    (.slmgate/index.sqlite: derived, git-ignored, caught up or rebuilt from git as needed) and
    every decision printed is re-checked against git first; delete .slmgate/ to force a rebuild."""
    from slmgate.engine.ledger._decision_log import decision_log, log_line, parse_bound
    from slmgate.engine.ledger._history import LedgerHistory

    lower = parse_bound(since, end=False, what="--since") if since else None
    upper = parse_bound(until, end=True, what="--until") if until else None
    with LedgerHistory(ledger_dir) as history:  # streamed: each line as soon as it is read
        for record in decision_log(history, model=model, outcomes=outcomes, since=lower, until=upper):
            click.echo(json.dumps(record, sort_keys=True) if fmt == "jsonl" else log_line(record))


@ledger.command()
@click.argument("decision_id")
@LEDGER
@click.option("--oscal", type=click.Path(path_type=Path), default=None,
              help="Write OSCAL assessment results (JSON) here: a finding per rule with the "
                   "controls it evidences (SOC 2, ISO/IEC 42001, EU AI Act Annex IV, as the "
                   "packet maps them), the reviewed controls, the requester and approvers, and "
                   "the ledger files it rests on with their SHA-256.")
@click.option("--junit", type=click.Path(path_type=Path), default=None,
              help="Write JUnit XML here.")
@guarded
def export(decision_id: str, ledger_dir: Path, oscal: Path | None, junit: Path | None) -> None:
    """Export one recorded decision for other tools: OSCAL assessment results, JUnit XML.

    The OSCAL resources link to ledger files by their path from the ledger's root, each with its
    SHA-256."""
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._index import resolve_decision
    from slmgate.engine.ledger._junit import decision_junit
    from slmgate.engine.ledger._oscal import assessment_results

    if not oscal and not junit:
        raise InputError("nothing to export: pass --oscal OUT.json and/or --junit OUT.xml")
    with LedgerHistory(ledger_dir) as history:
        recorded = history.load(resolve_decision(history, decision_id))
        bundle = history.bundle_files(recorded.manifest.bundle_digest) if oscal else {}
    if oscal:
        doc = assessment_results(recorded, bundle)
        write_atomic(oscal, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
        click.echo(f"oscal: {oscal}")
    if junit:
        write_atomic(junit, decision_junit(recorded.decision).encode())
        click.echo(f"junit: {junit}")
