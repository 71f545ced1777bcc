"""How `promote` reports on stdout for CI: a pull-request comment in Markdown, and a report in the
asked format even when nothing was decided (bad input, exit 2; could not verify, exit 4)."""

from __future__ import annotations

import json
from typing import Any

from slmgate.evidence.errors import InputError, SlmgateError

_MARK = {"approve": "✅ APPROVE", "review": "⏸️ REVIEW", "deny": "⛔ DENY"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def decision_markdown(doc: dict[str, Any]) -> str:
    """A pull-request comment: outcome, tier, blocking findings with their messages, approvals
    still needed, the stable digest to sign, and the evidence table (no links)."""
    model = (doc.get("request") or {}).get("model") or {}
    lines = [f"### slmgate: {_MARK.get(doc.get('outcome', ''), doc.get('outcome'))} — "
             f"{_cell(model.get('name'))} {_cell(model.get('version'))}",
             "", f"{_cell(doc.get('summary', ''))}", "",
             f"- tier: `{doc.get('tier')}`  exit code: `{doc.get('exit_code')}`",
             f"- weights: `{model.get('weights_digest')}`",
             f"- stable digest (what approvals sign): `{doc.get('stable_digest')}`",
             f"- decision `{doc.get('id')}` under `{doc.get('bundle_digest')}`"]
    blocking = [f for f in doc.get("findings") or [] if f.get("severity") in ("deny", "review")]
    if blocking:
        lines += ["", "| severity | rule | why |", "|---|---|---|"]
        lines += [f"| {f['severity']} | `{f['rule_id']}` | {_cell(f.get('message'))} |" for f in blocking]
    needed = doc.get("approvals_needed") or []
    if needed:
        lines += ["", "Approvals still needed: " + ", ".join(f"{a['count']}× {a['role']}" for a in needed)
                  + " (`slmgate approve REQUEST --key KEY -o APPROVAL.dsse.json`)"]
    lines += ["", "| evidence | verified | signers or reason |", "|---|---|---|"]
    for e in doc.get("evidence") or []:
        detail = ", ".join(e.get("signers") or []) if e.get("verified") else \
            f"{e.get('failed_step')}: {e.get('reason')}"
        lines.append(f"| `{_cell(e.get('ref'))}` | {'yes' if e.get('verified') else '**no**'} | "
                     f"{_cell(detail)} |")
    return "\n".join(lines) + "\n"


def error_report(fmt: str, exc: BaseException, exit_code: int, *,
                 command: str = "promote") -> str | None:
    """What `promote --format json|junit|markdown` (and `policy test --format json|junit`)
    prints on stdout when it decided nothing; ``None`` for text (the error goes to stderr
    only)."""
    file = exc.file if isinstance(exc, InputError) else None
    field = exc.field if isinstance(exc, InputError) else None
    message = exc.message if isinstance(exc, SlmgateError) else f"{type(exc).__name__}: {exc}"
    kind = "invalid-input" if exit_code == 2 else "could-not-verify"
    if fmt == "json":
        return json.dumps({"outcome": "error", "exit_code": exit_code,
                           "error": {"kind": kind, "message": message, "file": file,
                                     "field": field}}, indent=2, sort_keys=True)
    if fmt == "junit":
        from slmgate.engine.ledger._junit import error_junit

        return error_junit(command, message, kind=kind, file=file, field=field).rstrip("\n")
    if fmt == "markdown":
        where = f" — `{file}`" + (f" `{field}`" if field else "") if file else ""
        return (f"### slmgate: ⛔ nothing decided (exit {exit_code}, {kind}){where}\n\n"
                f"{_cell(message)}\n")
    return None
