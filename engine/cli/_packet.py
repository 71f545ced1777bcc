"""`slmgate packet render|verify` and `slmgate ropa`: auditor packets for recorded decisions,
their offline re-verification, and the GDPR Art. 30 records of processing."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from slmgate.engine.cli._common import FORMAT, POLICIES, emit, guarded
from slmgate.engine.policy import _decision as exits
from slmgate.evidence import parse_time, write_atomic
from slmgate.evidence.errors import InputError


@click.group()
def packet() -> None:
    """Render auditor packets for recorded decisions and re-verify packets offline."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", file=str(path)) from exc


@packet.command("render")
@click.option("--ledger", type=click.Path(path_type=Path), default=None,
              help="A decision ledger; with --decision, render that entry (its stored bundle).")
@click.option("--decision", "decision_id", default=None, metavar="ID", help="Decision id in --ledger.")
@click.option("--record", type=click.Path(path_type=Path), default=None,
              help="A signed decision record (decision-record DSSE envelope).")
@click.option("--request", type=click.Path(path_type=Path), default=None,
              help="With --record: the promotion request; its evidence paths are relative to it.")
@POLICIES
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The packet PDF.")
@click.option("--signing-key", type=click.Path(path_type=Path), envvar="SLMGATE_GATE_KEY", default=None,
              help="Seal the packet with this gate key (one that signed the decision record): "
                   "`packet verify` then checks the pages against the seal instead of "
                   "re-rendering. Without it the packet is unsealed. Env: SLMGATE_GATE_KEY.")
@FORMAT
@guarded
def packet_render(ledger: Path | None, decision_id: str | None, record: Path | None,
                  request: Path | None, policies: Path, output: Path, signing_key: Path | None,
                  fmt: str) -> None:
    """Render the packet of a recorded decision, from a ledger entry (with the policy bundle the
    ledger stored for it, else --policies) or from a decision record and its request (with
    --policies). The record must verify under the bundle's trust policy, the bundle must be the
    one decided under, and replaying the request must give the recorded decision.
    Exit 0 rendered, 2 bad input, 4 the record does not verify or does not replay."""
    from slmgate.engine.request._request import load_request

    if (ledger is None) == (record is None) or (ledger and not decision_id) or (record and not request):
        raise InputError("give either --ledger DIR --decision ID, or --record FILE --request FILE")
    if ledger is not None:
        from slmgate.engine.ledger._history import LedgerHistory
        from slmgate.engine.ledger._store import LedgerError

        with LedgerHistory(ledger) as history:
            entry = history.load(history.resolve(str(decision_id)))
            digest = str(entry.decision.get("bundle_digest"))
            try:
                bundle_root = history.bundle_dir(digest)
            except LedgerError:
                bundle_root = policies
            decision = _render_recorded(entry.record, entry.request, entry.evidence, bundle_root,
                                        output, signing_key)
    else:
        assert record is not None and request is not None
        req = load_request(request)
        decision = _render_recorded(_read(record, "the decision record"), req.raw,
                                    {e.ref: e.raw for e in req.evidence}, policies, output, signing_key)
    emit(fmt, {"packet": str(output), "decision": decision.id, "outcome": decision.outcome},
         f"packet: {output} ({decision.outcome.upper()} {decision.id})")


def _render_recorded(record_raw: bytes, request_raw: bytes, evidence: dict[str, bytes],
                     policies: Path, output: Path, signing_key: Path | None) -> exits.Decision:
    from slmgate.engine.packet._content import packet_attachments, packet_content
    from slmgate.engine.packet._render import render_packet
    from slmgate.engine.packet._verify import BundleError, read_record, replay_record
    from slmgate.engine.policy._bundle import load_bundle

    bundle = load_bundle(policies)
    recorded = read_record(record_raw, bundle.trust, f"the trust policy of {policies}")
    try:
        req, result, _ = replay_record(recorded, request_raw, evidence, bundle)
    except BundleError as exc:
        raise InputError(exc.message, file=str(policies),
                         advice=f"check out policy revision {recorded.decision.get('policy_revision')}"
                         ) from exc
    decision = dataclasses.replace(result.decision,
                                   policy_revision=recorded.decision.get("policy_revision"))
    seal = None
    if signing_key is not None:
        from slmgate.engine.packet._seal import sealer
        from slmgate.evidence import SigningKey

        key = SigningKey.load(signing_key)
        if key.public_key.keyid not in {k.keyid for k in recorded.keys}:
            raise InputError("this key did not sign the decision record, so `packet verify` would "
                             "refuse its seal", file=str(signing_key), field="--signing-key",
                             advice="seal with the gate key that signed the record, or render unsealed")
        seal = sealer(recorded.raw, decision.id, key, recorded.decided_at)
    render_packet(packet_content(decision, result.facts, bundle, result.verified),
                  packet_attachments(req, recorded.raw, decision, bundle), output, seal)
    return decision


@packet.command("verify")
@click.argument("pdf", type=click.Path(path_type=Path))
@click.option("--trust", type=click.Path(path_type=Path), default=None,
              help="Your organisation's trust policy (trust.yaml): the root of trust.")
@click.option("--gate-key", type=click.Path(path_type=Path), default=None,
              help="Or only the gate's public key: the root of trust.")
@click.option("--rerender", is_flag=True, default=False,
              help="Also re-render the packet from the signed record and compare every page (a "
                   "sealed packet is otherwise checked against the gate's seal; an unsealed one is "
                   "always re-rendered). Needs the slmgate, WeasyPrint and fonts it was made with.")
@FORMAT
@guarded
def packet_verify(pdf: Path, trust: Path | None, gate_key: Path | None, rerender: bool, fmt: str) -> None:
    """Re-verify PDF offline from what it carries, under YOUR root of trust (never the packet's
    own trust policy alone): the signed record, the printed decision, the attachments, the
    policy bundle, a replay of the decision, and every page. Exit 0 verified, 4 naming what
    failed, 2 unreadable input."""
    from slmgate.engine.packet._verify import RootOfTrust, verify_packet

    if (trust is None) == (gate_key is None):
        raise InputError("give exactly one root of trust: --trust TRUST.yaml or --gate-key GATE.pub",
                         advice="the packet's own trust policy is never trusted on its own")
    if trust is not None:
        root = RootOfTrust.from_trust_file(trust)
    else:
        assert gate_key is not None
        root = RootOfTrust.from_gate_key(gate_key)
    report = verify_packet(pdf, root, rerender=rerender)
    emit(fmt, report.to_json(), report.text())
    sys.exit(exits.EXIT_APPROVED if report.ok else exits.EXIT_UNVERIFIED)


@click.command("ropa")
@POLICIES
@click.option("--format", "fmt", type=click.Choice(["pdf", "csv", "json"]), default="json",
              show_default=True, help="pdf needs -o; csv and json go to stdout without it.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
@click.option("--as-of", "as_of", default=None, metavar="RFC3339",
              help="Date of the record. Default: SOURCE_DATE_EPOCH, else the policy commit's time.")
@click.option("--data-cards", "data_cards", type=click.Path(path_type=Path), default=None,
              metavar="DIR", help="Signed data cards (DIR/*.dsse.json), verified against the "
              "bundle's trust.yaml: recipients from their access roles, data sources from their "
              "provenance and derivative chains. One that does not verify: exit 4.")
@click.option("--bom", is_flag=True, default=False,
              help="csv: start with a UTF-8 byte-order mark, for spreadsheets that need one.")
@guarded
def ropa(policies: Path, fmt: str, output: Path | None, as_of: str | None,
         data_cards: Path | None, bom: bool) -> None:
    """Records of processing activities (GDPR Art 30(1)) from the policy bundle, one per purpose.

    Controller and DPO, joint controllers and EU representative, lawful basis, data subjects and
    categories, recipients, third-country transfers and safeguards, erasure limits, security
    measures, datasets and flows; recipients from the flows declared in purposes.yaml. A transfer
    outside a data class's residency without a safeguard, a dataset whose purpose does not exist
    or that is kept longer than its purpose allows, is refused naming it (exit 2). CSV: UTF-8
    without a BOM unless --bom; a cell with several values holds one per line."""
    from slmgate.engine.packet._ropa import (
        processing_record,
        record_time,
        render_ropa_pdf,
        ropa_csv,
        ropa_json,
    )
    from slmgate.engine.policy._bundle import load_bundle, load_trust_policy
    from slmgate.engine.policy._yamldoc import load_yaml

    if fmt == "pdf" and output is None:
        raise InputError("--format pdf needs -o OUT.pdf")
    try:
        when = parse_time(as_of, what="--as-of") if as_of else None
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    bundle = load_bundle(policies, with_keys=False)
    when = when or record_time(bundle)
    cards: list[dict[str, Any]] = []
    if data_cards is not None:
        from slmgate.engine.policy._training import load_data_cards

        cards = load_data_cards(data_cards, load_trust_policy(policies / "trust.yaml"),
                                datetime.now(UTC))
    record = processing_record(bundle.data, load_yaml(policies / "trust.yaml").data, as_of=when,
                               bundle_digest=bundle.digest, policy_revision=bundle.revision,
                               cards=cards)
    if fmt == "pdf":
        assert output is not None
        render_ropa_pdf(record, output, when)
    else:
        data = ropa_csv(record, bom=bom) if fmt == "csv" else ropa_json(record)
        if output is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        write_atomic(output, data)
    click.echo(f"records of processing ({len(record['activities'])} activities): {output}", err=True)
