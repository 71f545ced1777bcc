"""`slmgate report program`: the program's numbers for executives and the model council, from
the ledger's verified records and the policy bundle."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click

from slmgate.engine.cli._common import POLICIES, guarded
from slmgate.engine.cli._ledger import LEDGER
from slmgate.evidence.errors import InputError


@click.group()
def report() -> None:
    """Reports over the ledger.

    \b
    Exit codes: 0 written; 2 bad input (not a ledger, an invalid bundle, a bad date; nothing
    written).
    """


@report.command("program")
@LEDGER
@POLICIES
@click.option("--since", default=None, metavar="YYYY-MM-DD",
              help="First day of the period reported [default: 12 weeks before --at].")
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="The report's time: 'this week', expiry windows and ages are judged from it "
                   "[default: now].")
@click.option("--format", "fmt", type=click.Choice(["pdf", "html", "json"]), default="pdf",
              show_default=True,
              help="pdf: PDF/A-3b (the packets' pipeline, the JSON attached); html: one "
                   "self-contained file (inline SVG, no script, nothing fetched); json: the "
                   "numbers for dashboards (fields in the README).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where the report goes (written atomically).")
@guarded
def program_command(ledger_dir: Path, policies: Path, since: str | None, at: str | None,
                    fmt: str, output: Path) -> None:
    """Page 1, for executives: the three trajectories — cost per successful task, defects and
    escalations, adoption (share fully automated) — week by week against the charter's
    baselines and targets, each with this week's number and its trend; and the risk note:
    waivers and keys expiring within 30 days, pending reviews and their age, promotions denied
    in the period with their root cause, regions drifted, subprocessors outside the data's
    residency under safeguards, and any record that did not verify. Page 2, for the model
    council: decision latency per tier, promotions per tier, exit codes over time.

    Only verified records count: decision records and deployment attestations signed by a gate
    key of the bundle's trust.yaml, ops-metrics signed by an identity it allows to sign them."""
    from slmgate.engine.ledger._history import LedgerHistory
    from slmgate.engine.ledger._verify import GateKeys
    from slmgate.engine.policy._bundle import load_bundle
    from slmgate.engine.report._program import program_report
    from slmgate.engine.report._render import write_report
    from slmgate.evidence import parse_time

    try:
        now = parse_time(at, what="--at") if at else datetime.now(UTC).replace(microsecond=0)
    except ValueError as exc:
        raise InputError(str(exc), field="--at") from exc
    try:
        start = date.fromisoformat(since) if since else None
    except ValueError as exc:
        raise InputError(f"expected a date YYYY-MM-DD, got {since!r}", field="--since") from exc
    bundle = load_bundle(policies)
    gates = GateKeys.from_trust_file(policies / "trust.yaml")
    with LedgerHistory(ledger_dir) as history:
        result = program_report(history, bundle, gates, now, start)
    write_report(result, fmt, output)
    t = result.trajectories
    lines = [f"program report ({fmt}) -> {output}",
             f"  {len(result.weeks)} week(s) since {result.since}, {result.decisions} decision(s), "
             f"{result.risk_count} item(s) in the risk note"]
    for name in ("cost", "defects", "adoption"):
        this = t[name].this_week
        lines.append(f"  {t[name].title}: {this[1]:.4f} ({this[0]}, {t[name].trend})" if this
                     else f"  {t[name].title}: no data")
    click.echo("\n".join(lines))
