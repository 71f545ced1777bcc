"""`slmgate deploy ...`: verify the weights served in a region against a recorded approval and
the charter's residency (optionally recording a gate-signed attestation), and read back the
state of every region."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from slmgate.engine.cli._common import FORMAT, emit, guarded
from slmgate.engine.cli._ledger import LEDGER
from slmgate.engine.ledger._verify import GateKeys
from slmgate.engine.policy import _decision as exits
from slmgate.evidence.errors import InputError

TRUST = click.option("--trust", type=click.Path(path_type=Path), default=None,
                     help="Trust policy whose decision-record signers are the gate keys.")
GATE_KEYS = click.option("--gate-key", "gate_keys", type=click.Path(path_type=Path), multiple=True,
                         help="The gate's public key (PEM); repeatable.")


def _gates(trust: Path | None, gate_keys: tuple[Path, ...]) -> GateKeys:

    if bool(trust) == bool(gate_keys):
        raise InputError("pass the root of trust: exactly one of --trust TRUST.yaml or --gate-key PUB",
                         advice="never a key read from the ledger itself")
    return GateKeys.from_trust_file(trust) if trust else GateKeys.from_public_keys(gate_keys)


@click.group()
def deploy() -> None:
    """Deployments after the decision, per region.

    \b
    Exit codes: verify 0 verified / 4 refused (naming the check: decision, approval, digest,
    region) / 2 bad input (unknown decision, no such folder); status 0 nothing flagged /
    1 a region drifted, a verification is too old or an attestation was refused.
    """


@deploy.command("verify")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--region", required=True, help="The region serving MODEL_DIR (e.g. eu-west).")
@LEDGER
@click.option("--decision", "decision_id", required=True,
              help="The recorded decision that approved these weights (id or unique prefix).")
@TRUST
@GATE_KEYS
@click.option("--record", is_flag=True,
              help="Commit a gate-signed deployment attestation to the ledger when verified.")
@click.option("--signing-key", type=click.Path(path_type=Path), envvar="SLMGATE_GATE_KEY",
              default=None, help="The gate's private key (with --record). Env: SLMGATE_GATE_KEY.")
@click.option("--host", default=None, help="The host serving the weights [default: this host].")
@FORMAT
@guarded
def verify_command(model_dir: Path, region: str, ledger_dir: Path, decision_id: str,
                   trust: Path | None, gate_keys: tuple[Path, ...], record: bool,
                   signing_key: Path | None, host: str | None, fmt: str) -> None:
    """Re-hash the weights in MODEL_DIR and check that decision --decision approved exactly
    them and that --region may serve the purpose's data (charter residency of the bundle the
    decision was made under). Exit 0 verified, 4 refused naming the check, 2 bad input."""
    from slmgate.engine.deploy._verify import DeploymentRefused, verify_deployment
    from slmgate.engine.ledger._attestation import PendingAttestation
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._store import Ledger
    from slmgate.evidence import SigningKey

    if record != bool(signing_key):
        raise InputError("--record and --signing-key go together: the attestation is signed by the gate")
    key = SigningKey.load(signing_key) if signing_key else None
    gates = _gates(trust, gate_keys)
    now = datetime.now(UTC).replace(microsecond=0)
    with LedgerHistory(ledger_dir) as history:
        try:
            check = verify_deployment(model_dir, region, history, decision_id, gates, now, host=host)
        except DeploymentRefused as exc:
            emit(fmt, {"verified": False, "region": region, "check": exc.check, "message": exc.reason},
                 f"FAIL: {model_dir} in {region}: {exc.message}")
            sys.exit(exits.EXIT_UNVERIFIED)
    doc = check.to_json()
    text = check.text()
    if key is not None:
        entry = Ledger(ledger_dir, signing_key=key).record_pending(PendingAttestation(
            "deployment-attestation", check.attestation(key),
            f"deploy: {check.model_name} verified in {check.region} ({check.weights_digest[:19]})"))
        doc["attestation"] = entry.decision_id
        text += f"\n  recorded: attestation {entry.decision_id} (commit {entry.commit[:12]})"
    emit(fmt, doc, text)


@deploy.command("status")
@LEDGER
@TRUST
@GATE_KEYS
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="Judge ages as of this time [default: now].")
@FORMAT
@guarded
def status_command(ledger_dir: Path, trust: Path | None, gate_keys: tuple[Path, ...],
                   at: str | None, fmt: str) -> None:
    """Per region: the digest in service, its decision, the last verification and its age.
    Exit 1 when a region is flagged (another digest of the same model served elsewhere, a
    verification older than charter.yaml deployments.max_verification_age_hours, or an
    attestation that does not verify), so a scheduled job can alert."""
    from slmgate.engine.deploy._status import deployment_status
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.evidence import parse_time

    gates = _gates(trust, gate_keys)
    try:
        now = parse_time(at, what="--at") if at else datetime.now(UTC).replace(microsecond=0)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with LedgerHistory(ledger_dir) as history:
        status = deployment_status(history, gates, now)
    emit(fmt, status.to_json(), status.text())
    sys.exit(1 if status.flagged else 0)
