"""One ISO week of a model in service as an ``ops-metrics`` predicate: read from a monitoring
export (CSV or JSON, one row per week), derived under the charter's cost model, and checked.

Columns (CSV header names, or the keys of each JSON object; ``COLUMNS`` is the contract):

    week            ISO 8601 week of the row, e.g. 2026-W47
    model           the model's name (as promoted)
    model_digest    sha256:<64 hex> of the weights in service that week (the statement's subject)
    region          optional: the region the row measures (empty: the whole program)
    tasks           tasks handled (a whole number, at least 1)
    automated       tasks completed by the model with no human edit
    escalated       tasks handed to a human (by policy or by low confidence)
    defects         tasks the model got wrong (re-routed by an agent)
    errors          tasks that failed (timeouts, crashes)
    successful      tasks completed successfully by the model: what cost per successful task
                    divides by
    device_hours    device-hours billed that week (empty: the charter's
                    operations.cost_model.device_hours_per_week)
    latency_p95_ms  95th percentile latency in milliseconds
    bm.<id>         the charter business metric <id> measured that week, in its unit — one
                    column per metric, except the ones operations.trajectories names, which are
                    derived: cost (cost per successful task), defects (defects / tasks) and
                    adoption (automated / tasks)

Counts are whole numbers from 0 to ``tasks``; other numbers are finite and not negative.
Cost per successful task = device_hours × price_per_device_hour ÷ successful (charter.yaml
``operations.cost_model``). Every problem is an ``InputError`` naming the file, the line (or
JSON element) and the column, and what was expected.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from slmgate.evidence import format_time, parse_time
from slmgate.evidence.errors import InputError, PredicateSchemaError

COLUMNS: dict[str, str] = {
    "week": "ISO 8601 week, e.g. 2026-W47",
    "model": "the model's name",
    "model_digest": "sha256:<64 hex> of the weights in service",
    "region": "optional: the region measured (empty: the whole program)",
    "tasks": "tasks handled (whole number, at least 1)",
    "automated": "tasks completed by the model with no human edit",
    "escalated": "tasks handed to a human",
    "defects": "tasks the model got wrong (re-routed by an agent)",
    "errors": "tasks that failed (timeouts, crashes)",
    "successful": "tasks the model completed successfully",
    "device_hours": "device-hours billed (empty: the charter's device_hours_per_week)",
    "latency_p95_ms": "95th percentile latency in milliseconds",
}
OPTIONAL = frozenset({"region", "device_hours"})
COUNTS = ("automated", "escalated", "defects", "errors", "successful")
METRIC_PREFIX = "bm."
_WEEK = re.compile(r"^([0-9]{4})-W([0-9]{2})$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class CostModel:
    """charter.yaml ``operations.cost_model``: what one device-hour costs."""

    device: str
    price_per_device_hour: float
    currency: str
    device_hours_per_week: float | None = None


@dataclass(frozen=True)
class OpsCharter:
    """What the charter says about operations: the program, its business metrics (id -> the
    metric), the cost model and the metric each executive trajectory is charted against."""

    program: str
    metrics: Mapping[str, Mapping[str, Any]]
    cost_model: CostModel
    trajectories: Mapping[str, str]  # "cost" | "defects" | "adoption" -> business metric id

    @classmethod
    def from_charter(cls, charter: Mapping[str, Any], *, source: str) -> OpsCharter:
        ops = charter.get("operations") or {}
        model = ops.get("cost_model")
        if not model:
            raise InputError("the charter has no operations.cost_model (device, "
                             "price_per_device_hour, currency)", file=source,
                             field="operations.cost_model",
                             advice="cost per successful task is device-hours × the charter's price")
        return cls(str(charter["program"]), {str(m["id"]): m for m in charter["business_metrics"]},
                   CostModel(str(model["device"]), float(model["price_per_device_hour"]),
                             str(model["currency"]),
                             float(model["device_hours_per_week"])
                             if model.get("device_hours_per_week") is not None else None),
                   dict(ops.get("trajectories") or {}))

    @property
    def derived(self) -> dict[str, str]:
        """Business metric id -> the trajectory it is derived from (never a column)."""
        return {mid: name for name, mid in self.trajectories.items()}


@dataclass(frozen=True)
class WeekRow:
    """One row of a monitoring export, values as read, and where it was read."""

    source: str
    where: str  # "line 4" (CSV) or "[3]" (JSON)
    values: Mapping[str, Any]


@dataclass(frozen=True)
class OpsWeek:
    """One week ready to sign: the subject and the predicate."""

    model: str
    digest_hex: str
    predicate: dict[str, Any]

    @property
    def week(self) -> str:
        return str(self.predicate["period"]["week"])


def iso_week(text: str) -> tuple[date, date]:
    """The first and last day of ISO week ``YYYY-Www``; ``ValueError`` for anything else."""
    match = _WEEK.match(text)
    if not match:
        raise ValueError(f"expected an ISO week like 2026-W47, got {text!r}")
    try:
        start = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a week of that year ({exc})") from exc
    return start, start + timedelta(days=6)


def week_of(moment: date) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def read_rows(path: Path) -> list[WeekRow]:
    """The rows of a CSV (``.csv``) or JSON (``.json``: an array of objects) export."""
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InputError("expected a .csv or .json monitoring export", file=source)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise InputError(f"larger than {_MAX_BYTES} bytes", file=source)
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", file=source) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 (byte {exc.start})", file=source) from exc
    rows = _csv_rows(text, source) if suffix == ".csv" else _json_rows(text, source)
    if not rows:
        raise InputError("holds no weeks (expected one row per week)", file=source)
    return rows


def _csv_rows(text: str, source: str) -> list[WeekRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = [h.strip() for h in header]
        _check_header(names, source, "line 1")
        rows = []
        for cells in reader:
            where = f"line {reader.line_num}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                raise InputError(f"has {len(cells)} cells, the header names {len(names)} columns",
                                 file=source, field=where)
            rows.append(WeekRow(source, where, dict(zip(names, (c.strip() for c in cells), strict=True))))
    except csv.Error as exc:
        raise InputError(f"is not CSV as expected ({exc})", file=source,
                         field=f"line {reader.line_num}") from exc
    return rows


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_rows(text: str, source: str) -> list[WeekRow]:
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"is not JSON as expected ({exc})", file=source) from exc
    if not isinstance(doc, list):
        raise InputError("expected a JSON array of week objects", file=source, field="(document)")
    rows = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise InputError("expected an object with the columns as keys", file=source, field=f"[{i}]")
        _check_header(list(item), source, f"[{i}]")
        rows.append(WeekRow(source, f"[{i}]", item))
    return rows


def _check_header(names: list[str], source: str, where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"column {name!r} appears twice", file=source, field=where)
        seen.add(name)
        if name not in COLUMNS and not (name.startswith(METRIC_PREFIX) and len(name) > 3):
            raise InputError(f"unknown column {name!r}; expected {', '.join(COLUMNS)} and "
                             f"{METRIC_PREFIX}<business metric id>", file=source, field=where)
    missing = [c for c in COLUMNS if c not in seen and c not in OPTIONAL]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", file=source, field=where,
                         advice="see `slmgate ops import --help` for the columns")


class _Cells:
    """Typed reads of one row's cells, each error naming the file, the row and the column."""

    def __init__(self, row: WeekRow) -> None:
        self.row = row

    def fail(self, column: str, expected: str) -> InputError:
        got = self.row.values.get(column)
        return InputError(f"expected {expected}, got {json.dumps(got)}", file=self.row.source,
                          field=f"{self.row.where}, column {column}")

    def text(self, column: str, optional: bool = False) -> str | None:
        value = self.row.values.get(column)
        if (value is None or value == "") and optional:
            return None
        if not isinstance(value, str) or not value.strip() or any(ord(c) < 32 for c in value):
            raise self.fail(column, "a non-empty single-line text")
        return value

    def number(self, column: str, expected: str = "a finite number, 0 or more",
               optional: bool = False) -> float | None:
        value = self.row.values.get(column)
        if (value is None or value == "") and optional:
            return None
        if isinstance(value, str):
            try:
                value = float(value) if re.fullmatch(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", value) \
                    else None
            except ValueError:
                value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0:
            raise self.fail(column, expected)
        return float(value)

    def count(self, column: str, at_most: int | None = None) -> int:
        value = self.row.values.get(column)
        expected = "a whole number, 0 or more" + (f" and at most tasks ({at_most})"
                                                   if at_most is not None else "")
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,15}", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 \
                or (at_most is not None and value > at_most):
            raise self.fail(column, expected)
        return value


def week_predicate(row: WeekRow, charter: OpsCharter, reported_at: datetime) -> OpsWeek:
    """The ops-metrics predicate of one row (``InputError`` naming the cell that is wrong)."""
    cells = _Cells(row)
    week = cells.text("week") or ""
    try:
        start, end = iso_week(week)
    except ValueError as exc:
        raise cells.fail("week", "an ISO 8601 week like 2026-W47") from exc
    if start > reported_at.date():
        raise cells.fail("week", f"a week that has begun by {format_time(reported_at)}")
    model = cells.text("model") or ""
    digest = cells.text("model_digest") or ""
    if not _DIGEST.match(digest):
        raise cells.fail("model_digest", "sha256: and 64 lower-case hex digits")
    tasks = cells.count("tasks")
    if tasks < 1:
        raise cells.fail("tasks", "at least 1 (a week without tasks has no shares; leave it out)")
    counts = {c: cells.count(c, tasks) for c in COUNTS}
    if counts["automated"] + counts["escalated"] > tasks:
        raise cells.fail("escalated", f"at most tasks - automated ({tasks - counts['automated']}): "
                                      "an escalated task is not automated")
    if counts["successful"] > tasks - counts["errors"]:
        raise cells.fail("successful", f"at most tasks - errors ({tasks - counts['errors']})")
    model_cost = charter.cost_model
    hours = cells.number("device_hours", optional=model_cost.device_hours_per_week is not None)
    if hours is None:
        hours = model_cost.device_hours_per_week or 0.0
    p95 = cells.number("latency_p95_ms") or 0.0
    total = hours * model_cost.price_per_device_hour
    per_success = total / counts["successful"] if counts["successful"] else None
    derived = {"cost": per_success, "defects": counts["defects"] / tasks,
               "adoption": counts["automated"] / tasks}
    metrics: dict[str, float] = {}
    for mid in charter.metrics:
        column = METRIC_PREFIX + mid
        if mid in charter.derived:
            if column in row.values and row.values[column] not in ("", None):
                raise cells.fail(column, f"no value: {mid} is derived ({charter.derived[mid]} "
                                         "trajectory); drop the column")
            value = derived[charter.derived[mid]]
            if value is not None:
                metrics[mid] = round(value, 6)
            continue
        if column not in row.values:
            raise InputError(f"missing column {column} (charter business metric {mid!r})",
                             file=row.source, field=row.where)
        metrics[mid] = cells.number(column, f"a finite number, 0 or more, in "
                                            f"{charter.metrics[mid].get('unit', 'its unit')}") or 0.0
    unknown = sorted(c for c in row.values if c.startswith(METRIC_PREFIX)
                     and c[len(METRIC_PREFIX):] not in charter.metrics)
    if unknown:
        raise cells.fail(unknown[0], f"a business metric of the charter ({', '.join(charter.metrics)})")
    predicate: dict[str, Any] = {
        "reported_at": format_time(reported_at),
        "period": {"week": week, "start": start.isoformat(), "end": end.isoformat()},
        "program": charter.program,
        "model": {"name": model, "weights_digest": digest},
        "tasks": tasks,
        "automated_share": round(counts["automated"] / tasks, 6),
        "escalation_share": round(counts["escalated"] / tasks, 6),
        "defects_per_1000": round(1000 * counts["defects"] / tasks, 4),
        "cost": {"device": model_cost.device, "device_hours": round(hours, 6),
                 "price_per_device_hour": model_cost.price_per_device_hour,
                 "currency": model_cost.currency, "total": round(total, 6),
                 "successful_tasks": counts["successful"],
                 "per_successful_task": round(per_success, 6) if per_success is not None else None},
        "latency_p95_ms": round(p95, 3),
        "error_rate": round(counts["errors"] / tasks, 6),
        "business_metrics": metrics,
    }
    region = cells.text("region", optional=True)
    if region:
        predicate["region"] = region
    check_ops_predicate(predicate)
    return OpsWeek(model, digest.removeprefix("sha256:"), predicate)


def import_weeks(path: Path, charter: OpsCharter, reported_at: datetime) -> list[OpsWeek]:
    """Every row of the export as a week to sign; one week (and region) once only."""
    weeks: list[OpsWeek] = []
    seen: dict[tuple[str, str], str] = {}
    for row in read_rows(path):
        week = week_predicate(row, charter, reported_at)
        key = (week.week, str(week.predicate.get("region", "")))
        if key in seen:
            raise InputError(f"week {key[0]}{f' in {key[1]}' if key[1] else ''} is also on "
                             f"{seen[key]}", file=row.source, field=f"{row.where}, column week")
        seen[key] = row.where
        weeks.append(week)
    return weeks


def check_ops_predicate(predicate: Mapping[str, Any]) -> None:
    """What the JSON Schema cannot say about an ops-metrics predicate (it is checked first):
    shares at most 1, the period's days those of its ISO week, reported no earlier than the
    week began, and the cost arithmetic consistent. ``PredicateSchemaError`` names the field."""
    def bad(field: str, message: str) -> PredicateSchemaError:
        return PredicateSchemaError(f"ops-metrics predicate: {field}: {message}", field=field)

    for field in ("automated_share", "escalation_share", "error_rate"):
        if float(predicate[field]) > 1:
            raise bad(field, f"a share is at most 1, got {predicate[field]}")
    if float(predicate["automated_share"]) + float(predicate["escalation_share"]) > 1 + 1e-9:
        raise bad("escalation_share", "automated and escalated shares add up to more than 1")
    period = predicate["period"]
    try:
        start, end = iso_week(str(period["week"]))
    except ValueError as exc:
        raise bad("period.week", str(exc)) from exc
    if (period["start"], period["end"]) != (start.isoformat(), end.isoformat()):
        raise bad("period", f"week {period['week']} runs {start} to {end}, the predicate says "
                            f"{period['start']} to {period['end']}")
    try:
        reported = parse_time(predicate["reported_at"], what="reported_at")
    except ValueError as exc:
        raise bad("reported_at", str(exc)) from exc
    if reported.date() < start:
        raise bad("reported_at", f"reported before week {period['week']} began")
    cost = predicate["cost"]
    total = float(cost["device_hours"]) * float(cost["price_per_device_hour"])
    if not math.isclose(float(cost["total"]), total, rel_tol=1e-4, abs_tol=1e-6):
        raise bad("cost.total", f"device_hours × price_per_device_hour is {total:.6f}, "
                                f"the predicate says {cost['total']}")
    successful, per = int(cost["successful_tasks"]), cost["per_successful_task"]
    if successful > int(predicate["tasks"]):
        raise bad("cost.successful_tasks", "more successful tasks than tasks")
    if (per is None) != (successful == 0) or (
            per is not None and not math.isclose(float(per), total / successful, rel_tol=1e-4,
                                                 abs_tol=1e-6)):
        raise bad("cost.per_successful_task", "is not total ÷ successful_tasks")
