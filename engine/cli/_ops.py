"""`slmgate ops import`: a monitoring export (one row per ISO week) signed as ops-metrics
statements under the charter's cost model, ready for `slmgate ledger record`."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click

from slmgate.engine.cli._common import FORMAT, POLICIES, emit, guarded
from slmgate.engine.ops._metrics import COLUMNS, METRIC_PREFIX
from slmgate.evidence.errors import InputError

_COLUMN_HELP = "\n".join(f"  {name:<15} {text}" for name, text in COLUMNS.items())


@click.group()
def ops() -> None:
    """Operations metrics as signed evidence: a week of the model in service.

    \b
    Exit codes: 0 signed; 2 bad input (a malformed row, named by file, line and column;
    nothing written).
    """


@ops.command("import", help=f"""Sign each week of METRICS (a monitoring export: .csv with a
header row, or .json, an array of objects with the same keys) as an ops-metrics statement
about the weights in service that week. Cost per successful task is device_hours ×
price_per_device_hour ÷ successful, with the price from charter.yaml operations.cost_model;
the business metrics the charter's operations.trajectories names are derived (cost, defects =
defects / tasks, adoption = automated / tasks), every other charter business metric needs
its column.

\b
Columns (one row per ISO week):
{_COLUMN_HELP}
  {METRIC_PREFIX + '<id>':<15} charter business metric <id> measured that week

One week: -o is the envelope file (or a folder it goes into). Several weeks: -o is a folder
that receives ops-metrics-<week>[-<region>].dsse.json each. A bad row (exit 2, naming the file, the line
and the column) writes nothing.""")
@click.argument("metrics", type=click.Path(path_type=Path))
@POLICIES
@click.option("--sign", "sign_key", type=click.Path(path_type=Path), required=True, metavar="KEY",
              help="The monitoring service's private key (trust.yaml: may_sign ops-metrics).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The envelope (one week) or a folder (several weeks).")
@click.option("--week", "only_week", default=None, metavar="YYYY-Www",
              help="Sign only this week's row(s).")
@click.option("--at", "at", default=None, metavar="RFC3339",
              help="The reporting time written as reported_at [default: now].")
@FORMAT
@guarded
def import_command(metrics: Path, policies: Path, sign_key: Path, output: Path,
                   only_week: str | None, at: str | None, fmt: str) -> None:
    from slmgate.engine.ops._metrics import OpsCharter, import_weeks
    from slmgate.engine.policy._bundle import load_bundle
    from slmgate.evidence import SigningKey, make_statement, parse_time, sign_envelope, write_atomic

    try:
        now = parse_time(at, what="--at") if at else datetime.now(UTC).replace(microsecond=0)
    except ValueError as exc:
        raise InputError(str(exc), field="--at") from exc
    key = SigningKey.load(sign_key)
    bundle = load_bundle(policies, with_keys=False)
    charter = OpsCharter.from_charter(bundle.data["charter"], source=str(policies / "charter.yaml"))
    weeks = import_weeks(metrics, charter, now)
    if only_week is not None:
        weeks = [w for w in weeks if w.week == only_week]
        if not weeks:
            raise InputError(f"no row for week {only_week}", file=str(metrics), field="--week")
    signed = {}
    for w in weeks:
        region = w.predicate.get("region")
        name = f"ops-metrics-{w.week}{f'-{region}' if region else ''}.dsse.json"
        signed[name] = sign_envelope(make_statement(w.model, w.digest_hex, "ops-metrics",
                                                    w.predicate), [key]).to_json()
    if len(signed) == 1 and not output.is_dir():
        write_atomic(output, next(iter(signed.values())))
        written = [str(output)]
    else:
        written = _write_folder(output, signed)
    doc = {"weeks": [w.predicate for w in weeks], "written": written}
    lines = [f"signed ops-metrics {w.week} {w.predicate.get('region') or ''}: "
             f"{w.predicate['tasks']} tasks, automated {w.predicate['automated_share']:.1%}, "
             f"escalated {w.predicate['escalation_share']:.1%}, cost/successful "
             f"{_money(w.predicate['cost'])}" for w in weeks]
    emit(fmt, doc, "\n".join([*lines, *(f"  -> {p}" for p in written)]))


def _money(cost: dict[str, object]) -> str:
    per = cost["per_successful_task"]
    return "none (no successful task)" if per is None else f"{per:.4f} {cost['currency']}"


def _write_folder(output: Path, files: dict[str, bytes]) -> list[str]:
    """Every envelope into ``output`` or none: a new folder appears whole (renamed into place);
    into an existing folder, each file atomically, after every file was signed."""
    from slmgate.evidence import write_atomic

    if output.exists() and not output.is_dir():
        raise InputError("several weeks need a folder, this is a file", file=str(output),
                         field="-o", advice="pass --week YYYY-Www to sign one week into one file")
    if output.is_dir():
        for name, data in files.items():
            write_atomic(output / name, data)
        return [str(output / n) for n in files]
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for name, data in files.items():
            write_atomic(work / name, data)
        os.chmod(work, 0o755)
        work.rename(output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return [str(output / n) for n in files]
