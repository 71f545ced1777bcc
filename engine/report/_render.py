"""The program report's three formats behind one function: PDF/A-3b through the packets'
WeasyPrint pipeline (``packet._render.render_document``, the report's JSON attached), HTML that
stands alone (styles and SVG charts inline, no script, nothing fetched), and JSON for dashboards
(``ProgramReport.to_json``). Every file is written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmgate.engine.report._chart import exit_code_chart, number, trajectory_chart
from slmgate.engine.report._program import ProgramReport
from slmgate.evidence import format_time, write_atomic

FORMATS = ("pdf", "html", "json")
_TEMPLATE = "report.html.j2"
_SERIES = {"cost": "cost per successful task", "defects": "defect rate (misroutes)",
           "adoption": "share fully automated"}


def report_json(report: ProgramReport) -> bytes:
    return json.dumps(report.to_json(), indent=2, sort_keys=True).encode() + b"\n"


def _view(report: ProgramReport, *, pdf: bool) -> dict[str, Any]:
    doc = report.to_json()
    trajectories = []
    for name, t in report.trajectories.items():
        this = t.this_week
        unit = t.unit
        headline = number(this[1], unit) if this else "—"
        if name == "defects" and report.weeks:
            w = report.weeks[-1]
            headline = (f"{w.defects_per_1000:.1f} defects per 1,000 · escalated "
                        f"{w.escalation_share * 100:.1f} %")
        arrow = "" if t.change is None or t.trend == "flat" else ("▲ " if t.change > 0 else "▼ ")
        trend = f"{arrow}{t.trend}"
        trajectories.append({
            "name": name, "title": t.title, "headline": headline,
            "week": this[0] if this else None, "trend": trend, "trend_class": t.trend.replace(" ", "-"),
            "change": number(t.change, unit) if t.change is not None else "—",
            "baseline": number(t.baseline, unit), "target": number(t.target, unit),
            "metric": t.metric,
            "chart": trajectory_chart(t.series, baseline=t.baseline, target=t.target, unit=unit,
                                      label=_SERIES[name], second=t.second,
                                      second_label=t.second_label),
        })
    return {"r": doc, "pdf": pdf, "trajectories": trajectories,
            "exit_chart": exit_code_chart(doc["council"]["exit_codes"]),
            "generated": format_time(report.generated_at),
            "risk_total": report.risk_count}


def write_report(report: ProgramReport, fmt: str, out: Path) -> None:
    """Write the report as ``fmt`` (pdf, html or json) to ``out``, atomically."""
    if fmt == "json":
        write_atomic(out, report_json(report))
        return
    from slmgate.engine.packet._render import Attachment, render_document, render_html

    if fmt == "html":
        html = render_html(_TEMPLATE, {**_view(report, pdf=False), "attachments": [],
                                       "created": format_time(report.generated_at)})
        write_atomic(out, html.encode())
        return
    if fmt != "pdf":
        raise ValueError(f"unknown report format {fmt!r}")
    render_document(_TEMPLATE, _view(report, pdf=True),
                    [Attachment("program-report.json", report_json(report),
                                "The report's numbers as JSON (slmgate report program --format json)")],
                    out, report.generated_at)
