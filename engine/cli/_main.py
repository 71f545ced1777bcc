"""The `slmgate` command line. Results go to stdout, logs and progress to stderr; errors become
exit codes in one place (``_cli_common.exit_code_for``)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections import Counter
from pathlib import Path

import click

from slmgate.engine.cli._common import FORMAT, POLICIES, emit, exit_code_for, guarded
from slmgate.engine.cli._lazy import LazyGroup
from slmgate.engine.cli._review import approval_options, read_approvals
from slmgate.engine.policy import _decision as exits
from slmgate.evidence import SigningKey, VerificationResult, parse_time
from slmgate.evidence.errors import InputError, PolicyError

# Each area keeps its commands in its own module, imported only when one of its commands runs
# (or for --help): `slmgate promote` loads neither git nor Jinja nor WeasyPrint. A command group
# may be extended by further modules (the runtime and training producers add to `evidence`).
COMMANDS = {
    "policy": ("slmgate.engine.cli._policy:policy",),
    "evidence": ("slmgate.engine.cli._evidence:evidence", "slmgate.engine.cli._runtime:evidence",
                 "slmgate.engine.cli._training:evidence"),
    "keys": ("slmgate.engine.cli._evidence:keys",),
    "ledger": ("slmgate.engine.cli._ledger:ledger",),
    "deploy": ("slmgate.engine.cli._deploy:deploy",),
    "ops": ("slmgate.engine.cli._ops:ops",),
    "report": ("slmgate.engine.cli._program:report",),
    "packet": ("slmgate.engine.cli._packet:packet",),
    "ropa": ("slmgate.engine.cli._packet:ropa",),
    "approve": ("slmgate.engine.cli._review:approve",),
    "review": ("slmgate.engine.cli._review:review",),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
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
    # `slmgate ledger log | head` ends quietly, as Unix tools do, instead of an internal error.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


# ------------------------------------------------------------------------------------ demo


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True,
              help="Output folder; replaced if it holds an earlier demo, refused otherwise.")
@FORMAT
@guarded
def demo(out: Path, fmt: str) -> None:
    """Run the whole main path on the embedded defaults (no server, no network).

    Lays out a policy repository with fresh keys, trains a baseline and two candidate models
    on the CPU, signs evidence about them, and runs five promotions: approved, denied for a
    stress regression, denied for tampered evidence, held for human sign-off, and approved on
    an eval imported from lm-eval results through imports.yaml. Each decision goes to a git
    ledger and a PDF packet.
    """
    from slmgate.engine.demo import run_demo

    results = run_demo(out)
    lines = ["", f"slmgate demo — {len(results)} promotions through the gate", ""]
    for r in results:
        d = r.decision
        lines.append(f"  {r.name:<26} {d.outcome.upper():<8} exit {d.exit_code}  ({r.story})")
        lines.append(f"  {'':<26} {d.summary()}")
        for f in [f for f in d.findings if f["severity"] != "info"][:3]:
            lines.append(f"  {'':<26}   - {f['rule_id']}: {f['message']}")
        lines.append(f"  {'':<26} packet: {r.packet}")
    summary = json.loads((out / "summary.json").read_text())
    lines.append("")
    for dep in summary.get("deployments", []):
        if dep["verified"]:
            lines.append(f"  deployed {dep['region']:<12} VERIFIED {dep['weights_digest'][:19]} "
                         f"approved by {dep['decision']} (attestation {dep['attestation']})")
        else:
            lines.append(f"  deployed {dep['region']:<12} DRIFTED  {dep['check']}: {dep['message'][:110]}")
    weeks = summary.get("operations", [])
    if weeks:
        lines.append("")
    for w in weeks:
        cost = w["cost_per_successful_task"]
        lines.append(f"  week {w['week']} {w['weights_digest'][7:19]}  {w['tasks']:>4} tickets  "
                     f"automated {w['automated_share']:6.1%}  escalated {w['escalation_share']:6.1%}  "
                     f"cost/successful {'—' if cost is None else f'{cost:.4f}'}  "
                     f"p95 {w['latency_p95_ms']:.2f} ms  (recorded {w['attestation']})")
    for fmt, path in summary.get("reports", {}).items():
        lines.append(f"  program report ({fmt}): {path}")
    lines += ["", f"  ledger:   {out / 'ledger'}  (git log there: one commit per decision, "
                  "per deployment attestation and per week of operations metrics)",
              f"  policies: {out / 'policy-repo'}", f"  summary:  {out / 'summary.json'}"]
    emit(fmt, summary, "\n".join(lines))


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
    from slmgate.engine.policy._scaffold import init_policy_repo

    secrets = secrets or directory.with_name(directory.name + "-secrets")
    private = init_policy_repo(directory, secrets, algorithm=algorithm)
    click.echo(f"policy repository: {directory} (git, one commit)")
    for name, path in private.items():
        click.echo(f"  {name:<16} private key {path}")
    click.echo("keep the private keys out of the policy repository; move them to your vault")


# ------------------------------------------------------------------------------------ promote


def _explained(item: dict[str, object]) -> str:
    explain = item.get("explain") or {}
    return "\n".join(f"           {part}: {json.dumps(value, sort_keys=True, default=str)}"
                     for part, value in sorted(explain.items()) if value)  # type: ignore[union-attr]


_LISTED = 30  # envelopes of each verdict listed one per line; past it, a summary (as in the packet)


def _evidence_lines(d: exits.Decision, explain: bool) -> list[str]:
    """One line per envelope, in the request's order; past ``_LISTED`` envelopes, up to ``_LISTED``
    verified and ``_LISTED`` refused ones and the rest summarised by kind, so a 1,000-envelope
    promotion prints a screenful (--explain and --format json list every one)."""
    def line(r: VerificationResult) -> str:
        detail = ", ".join(r.signers) if r.verified else f"{r.failed_step}: {r.reason}"
        return f"  evidence {'ok  ' if r.verified else 'FAIL'} {r.ref}: {detail}"

    if explain or len(d.evidence) <= _LISTED:
        return [line(r) for r in d.evidence]
    lines = []
    for verified in (True, False):
        rows = [r for r in d.evidence if r.verified == verified]
        shown = rows[:_LISTED]
        lines += [line(r) for r in shown]
        if rest := rows[len(shown):]:
            kinds = Counter(str(r.kind or "unknown kind") for r in rest)
            lines.append(f"  evidence {'ok  ' if verified else 'FAIL'} … and {len(rest)} more "
                         f"{'verified' if verified else 'refused'} ("
                         + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                         + "; --explain or --format json lists every one)")
    return lines


def _decision_text(d: exits.Decision, explain: bool = False) -> str:
    model = d.request["model"]
    lines = [f"{d.outcome.upper()}: {model['name']} {model['version']} ({d.tier} tier) — {d.summary()}",
             f"  decision {d.id} under {d.bundle_digest} (revision {d.policy_revision or 'none'})"]
    lines += _evidence_lines(d, explain)
    for f in d.findings:
        lines.append(f"  {f['severity']:<6} {f['rule_id']}: {f['message']}")
        if explain:
            lines.append(_explained(f))
    for a in d.approvals_needed:
        lines.append(f"  needs  {a['count']}× {a['role']} approval")
    if explain:
        for c in (c for c in d.checks if c["passed"]):
            lines.append(f"  passed {c['rule_id']}: {c['message']}")
            lines.append(_explained(c))
    return "\n".join(line for line in lines if line)


@main.command()
@click.argument("request", type=click.Path(path_type=Path))
@POLICIES
@click.option("--ledger", type=click.Path(path_type=Path), default=None,
              help="Record the signed decision in this git ledger (created if absent).")
@click.option("--signing-key", type=click.Path(path_type=Path), envvar="SLMGATE_GATE_KEY",
              default=None, help="The gate's private key for the decision record. Env: SLMGATE_GATE_KEY.")
@click.option("--packet", type=click.Path(path_type=Path), default=None,
              help="Write the auditor packet (PDF/A-3b) here, sealed: the gate signs the digest "
                   "of every page, so `packet verify` checks the pages without re-rendering.")
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="Evaluate as of this time instead of now: a dry run only, refused with "
                   "--ledger, --packet and --signing-key (a recorded decision is never backdated).")
@click.option("--evidence-root", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Paths in the request are relative to its folder and must stay inside it, or "
                   "inside DIR when given. Absolute paths, '..' escapes and links leaving it "
                   "are refused.")
@click.option("--max-evidence-bytes", type=click.IntRange(min=1), default=16 << 20,
              show_default=True, help="Largest evidence file read; a larger one is refused.")
@click.option("--max-request-bytes", type=click.IntRange(min=1), default=1 << 20,
              show_default=True, help="Largest request file read; a larger one is refused "
                                      "before parsing.")
@click.option("--explain", is_flag=True,
              help="Show, for each finding and passed check, the facts and policy data it used.")
@click.option("--engine", type=click.Choice(["regorus", "regopy", "opa", "embedded"]),
              default="regorus", show_default=True,
              help="regorus (embedded, the default; 'embedded' names it too) or regopy: in-process. "
                   "opa: an OPA server (--opa-url), fed this bundle. Every engine gives the same "
                   "decision, byte for byte.")
@click.option("--opa-url", default=None, envvar="SLMGATE_OPA_URL", metavar="URL",
              help="OPA server for --engine opa, e.g. http://127.0.0.1:8181. Env: SLMGATE_OPA_URL.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit", "markdown"]),
              default="text", show_default=True,
              help="How the decision is printed on stdout: junit (JUnit XML; REVIEW as skipped "
                   "tests), markdown (a pull-request comment). json, junit and markdown print a "
                   "report on every exit code, 2 and 4 included.")
@click.option("--review-exit-code", type=click.IntRange(0, 255), default=3, show_default=True,
              help="Exit code for REVIEW (human approval needed); 0 keeps CI green while it waits.")
@approval_options
@click.option("--checkpoint-out", type=click.Path(path_type=Path), default=None,
              help="With --ledger: write the ledger's signed checkpoint after recording (a CI artifact).")
@guarded
def promote(request: Path, policies: Path, ledger: Path | None, signing_key: Path | None,
            packet: Path | None, at: str | None, evidence_root: Path | None,
            max_evidence_bytes: int, max_request_bytes: int, explain: bool, engine: str,
            opa_url: str | None, fmt: str, review_exit_code: int, approval_files: tuple[Path, ...],
            approvals_dir: Path | None, checkpoint_out: Path | None) -> None:
    """Verify the evidence of REQUEST, evaluate the policy, record and report. The exit code is
    the gate: 0 approved, 1 denied, 2 invalid input, 3 review required (--review-exit-code),
    4 could not verify.

    REQUEST and every file it names are the requester's: paths stay inside the request's
    folder (or --evidence-root), only regular files within the size limits are read, and a
    file that is not a DSSE envelope is recorded by its digest only."""
    try:
        _promote(request, policies, ledger, signing_key, packet, at, evidence_root,
                 max_evidence_bytes, max_request_bytes, explain, engine, opa_url, fmt,
                 review_exit_code, approval_files, approvals_dir, checkpoint_out)
    except Exception as exc:  # the report CI reads, then the usual message and exit code
        from slmgate.engine.cli._report import error_report

        report = error_report(fmt, exc, exit_code_for(exc))
        if report is not None:
            click.echo(report)
        raise


def _promote(request: Path, policies: Path, ledger: Path | None, signing_key: Path | None,
             packet: Path | None, at: str | None, evidence_root: Path | None,
             max_evidence_bytes: int, max_request_bytes: int, explain: bool, engine: str,
             opa_url: str | None, fmt: str, review_exit_code: int,
             approval_files: tuple[Path, ...], approvals_dir: Path | None,
             checkpoint_out: Path | None) -> None:
    from slmgate.engine.policy._bundle import load_bundle
    from slmgate.engine.policy._engines import DEFAULT_ENGINE, embedded_engine
    from slmgate.engine.policy._evaluate import DecisionEngine, evaluate_promotion
    from slmgate.engine.promote import record_in_ledger, sign_decision_record
    from slmgate.engine.request._request import RequestLimits, load_request

    try:
        now = parse_time(at, what="--at") if at else None
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if at and (ledger or packet or signing_key):
        raise InputError("--at is for dry runs: a recorded, signed or rendered decision is made "
                         "at the time it is made", field="--at",
                         advice="drop --at, or drop --ledger/--packet/--signing-key; "
                                "`slmgate ledger replay` re-evaluates recorded decisions")
    if ledger and not signing_key:
        raise InputError("--ledger needs --signing-key (the gate signs every decision record)")
    if packet and not signing_key:
        raise InputError("--packet needs --signing-key (a packet without the signed decision "
                         "record could never verify)")
    if checkpoint_out and not ledger:
        raise InputError("--checkpoint-out needs --ledger (it is the ledger's checkpoint)")
    if engine == "opa" and not opa_url:
        raise InputError("--engine opa needs --opa-url")
    limits = RequestLimits(max_request_bytes=max_request_bytes,
                           max_evidence_bytes=max_evidence_bytes,
                           max_total_evidence_bytes=16 * max_evidence_bytes)
    req = load_request(request, evidence_root=evidence_root, limits=limits)
    req = req.with_approvals(read_approvals(approval_files, approvals_dir))
    bundle = load_bundle(policies)
    key = SigningKey.load(signing_key) if signing_key else None
    ledger_db = None
    if ledger:  # git is imported only by a promotion that records
        from slmgate.engine.ledger._store import Ledger

        ledger_db = Ledger(ledger, signing_key=key)
    if engine == "opa":
        from slmgate.engine.policy._opa import OpaServerPolicy

        try:
            policy: DecisionEngine = OpaServerPolicy(bundle, opa_url or "")
        except PolicyError as exc:  # an unreachable decision service is a denial, said plainly
            raise PolicyError(exc.message, advice="the gate fails closed; check --opa-url") from exc
    else:
        policy = embedded_engine(bundle, DEFAULT_ENGINE if engine == "embedded" else engine)
    result = evaluate_promotion(req, bundle, policy, now=now)
    decision = result.decision
    record = sign_decision_record(decision, key) if key else None
    entry = None
    if ledger_db and record:
        entry = record_in_ledger(ledger_db, decision, record, req, [e.raw for e in req.evidence],
                                 bundle)
        if checkpoint_out and key:
            from slmgate.engine.ledger._checkpoint import checkpoint_of_entry
            from slmgate.evidence import write_atomic

            write_atomic(checkpoint_out, checkpoint_of_entry(
                ledger_db.path, entry.commit, entry.seq, key,
                parse_time(decision.evaluated_at, what="evaluated_at")))
    if packet:  # WeasyPrint loads only when a packet is asked for
        from slmgate.engine.packet._content import packet_attachments, packet_content
        from slmgate.engine.packet._render import render_packet
        from slmgate.engine.packet._seal import sealer

        assert record is not None and key is not None  # --packet needs --signing-key
        render_packet(packet_content(decision, result.facts, bundle, result.verified),
                      packet_attachments(req, record, decision, bundle), packet,
                      sealer(record, decision.id, key, parse_time(decision.evaluated_at,
                                                                  what="evaluated_at")))
    doc = decision.to_json()
    doc["stable_digest"] = stable = req.approval_digest
    text = _decision_text(decision, explain) + f"\n  stable digest (what approvals sign): {stable}"
    if entry:
        doc["ledger_commit"] = entry.commit
        text += f"\n  recorded in {ledger} at {entry.commit[:12]}"
    if packet:
        text += f"\n  packet: {packet}"
    if fmt == "junit":
        from slmgate.engine.ledger._junit import decision_junit

        click.echo(decision_junit(doc), nl=False)
    elif fmt == "markdown":
        from slmgate.engine.cli._report import decision_markdown

        click.echo(decision_markdown(doc), nl=False)
    else:
        emit(fmt, doc, text)
    code = decision.exit_code
    sys.exit(review_exit_code if code == exits.EXIT_REVIEW else code)


if __name__ == "__main__":
    main(prog_name="slmgate")
