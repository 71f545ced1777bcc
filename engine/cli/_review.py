"""The review path as a workflow: `slmgate approve` signs an approval bound to the request's
stable digest, `slmgate review status` shows what a request still needs, and `promote
--approval/--approvals` counts approvals supplied beside the request without editing it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from slmgate.engine.cli._common import FORMAT, POLICIES, emit, guarded
from slmgate.engine.request._confined import contains_private_key, read_capped
from slmgate.evidence import SigningKey, format_time, make_statement, sign_envelope, write_atomic
from slmgate.evidence.errors import InputError

MAX_APPROVAL_BYTES = 1 << 20


def approval_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--approval FILE`` (repeatable) and ``--approvals DIR``."""
    fn = click.option("--approvals", "approvals_dir", type=click.Path(path_type=Path), default=None,
                      metavar="DIR", help="Count every *.json approval envelope in DIR.")(fn)
    return click.option("--approval", "approval_files", type=click.Path(path_type=Path),
                        multiple=True, metavar="FILE",
                        help="An approval envelope (`slmgate approve -o`) to count; repeatable. "
                             "One that does not verify, or is for another request, does not "
                             "count and the decision says why.")(fn)


def read_approvals(files: tuple[Path, ...], folder: Path | None) -> list[tuple[str, bytes]]:
    """(name, bytes) of the approvals named on the command line: regular files, at most 1 MiB
    each, never a private key; a folder contributes its ``*.json`` files in name order."""
    paths = list(files)
    if folder is not None:
        if not folder.is_dir():
            raise InputError("not a folder of approval envelopes", file=str(folder),
                             field="--approvals")
        paths += sorted(p for p in folder.iterdir() if p.suffix == ".json")
    out = []
    for path in paths:
        raw = read_capped(path, MAX_APPROVAL_BYTES, file=str(path), field="--approval",
                          what="the approval")
        if contains_private_key(raw):
            raise InputError("holds a private key; refused", file=str(path), field="--approval")
        out.append((path.name, raw))
    return out


def _load(request: Path, policies: Path, evidence_root: Path | None,
          files: tuple[Path, ...], folder: Path | None) -> tuple[Any, Any, Any]:
    from slmgate.engine.policy._bundle import load_bundle
    from slmgate.engine.policy._engines import embedded_engine
    from slmgate.engine.policy._evaluate import evaluate_promotion
    from slmgate.engine.request._request import load_request

    req = load_request(request, evidence_root=evidence_root)
    req = req.with_approvals(read_approvals(files, folder))
    bundle = load_bundle(policies)
    result = evaluate_promotion(req, bundle, embedded_engine(bundle), bind_weights=False)
    return req, bundle, result


def _status(req: Any, result: Any) -> dict[str, Any]:
    d = result.decision
    present = [{"role": a["role"], "signer": a["signer"], "counts": a["request_bound"]}
               for a in result.facts["evidence"]["approvals"]]
    refused = [{"ref": r.ref, "step": r.failed_step, "reason": r.reason}
               for r in d.evidence if not r.verified]
    return {
        "request": req.id, "model": d.request["model"], "tier": d.tier,
        "stable_digest": req.approval_digest, "outcome_now": d.outcome,
        "approvals_present": present, "evidence_refused": refused,
        "approvals_needed": d.approvals_needed,
        "open_findings": [{"rule_id": f["rule_id"], "severity": f["severity"],
                           "message": f["message"]}
                          for f in d.findings if f["severity"] in ("deny", "review")],
    }


def _status_text(s: dict[str, Any]) -> str:
    m = s["model"]
    lines = [f"{s['request']}: {m['name']} {m['version']} ({m['weights_digest']})",
             f"  tier: {s['tier']}   outcome now: {s['outcome_now'].upper()}",
             f"  stable digest (what an approval signs): {s['stable_digest']}"]
    for a in s["approvals_present"]:
        lines.append(f"  approval {a['role']} by {a['signer']}"
                     f"{'' if a['counts'] else ' — not bound to this request, does not count'}")
    for r in s["evidence_refused"]:
        lines.append(f"  refused  {r['ref']}: {r['step']}: {r['reason']}")
    for a in s["approvals_needed"]:
        lines.append(f"  needs    {a['count']}× {a['role']}")
    for f in s["open_findings"]:
        lines.append(f"  open     {f['rule_id']}: {f['message']}")
    return "\n".join(lines)


@click.group()
def review() -> None:
    """Where a promotion stands on the way to approval."""


@review.command("status")
@click.argument("request", type=click.Path(path_type=Path))
@POLICIES
@click.option("--evidence-root", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="As for `promote`: the folder every path in the request must stay inside.")
@approval_options
@FORMAT
@guarded
def status(request: Path, policies: Path, evidence_root: Path | None,
           approval_files: tuple[Path, ...], approvals_dir: Path | None, fmt: str) -> None:
    """The tier of REQUEST, the approvals present and still needed, the open findings, and the
    stable digest an approval must sign (a dry run: nothing is recorded; weights not re-hashed).
    Exit 0 whatever the request's outcome; 2 on invalid input."""
    req, _bundle, result = _load(request, policies, evidence_root, approval_files, approvals_dir)
    s = _status(req, result)
    emit(fmt, s, _status_text(s))


@click.command()
@click.argument("request", type=click.Path(path_type=Path))
@click.option("--key", "key_path", type=click.Path(path_type=Path), required=True,
              help="Your private key (its public half is an identity in trust.yaml).")
@click.option("--role", default=None, help="Refuse unless the key's identity holds this role.")
@click.option("--comment", default="", help="Why you approve; kept in the signed approval.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where the approval envelope is written (refused if it exists).")
@POLICIES
@click.option("--evidence-root", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="As for `promote`: the folder every path in the request must stay inside.")
@FORMAT
@guarded
def approve(request: Path, key_path: Path, role: str | None, comment: str, output: Path,
            policies: Path, evidence_root: Path | None, fmt: str) -> None:
    """Sign an approval of REQUEST, bound to its stable digest.

    Shows what is being approved (model, version, weights digest, change classes, tier,
    findings still open), then signs an in-toto approval statement about the candidate's
    weights. The approval stays valid when the request folder moves; it is void if anything the
    digest covers changes (weights, change classes, deployment, training data, evidence)."""
    if output.exists() or output.is_symlink():
        raise InputError("exists; an approval is never written over a file", file=str(output))
    req, bundle, result = _load(request, policies, evidence_root, (), None)
    key = SigningKey.load(key_path)
    identity = next((i for i in bundle.trust.identities if i.key.keyid == key.public_key.keyid),
                    None)
    if identity is None:
        raise InputError("this key is not an identity in the policy's trust.yaml",
                         file=str(key_path), advice="an approval by an unknown key never counts")
    if "approval" not in identity.may_sign:
        raise InputError(f"identity {identity.name} may not sign approvals (trust.yaml)",
                         file=str(key_path))
    if role and identity.role != role:
        raise InputError(f"the key is {identity.name}, role {identity.role}, not {role}",
                         field="--role")
    s = _status(req, result)
    predicate = {"request_id": req.id, "request_digest": req.approval_digest, "decision": "approve",
                 "approved_at": format_time(datetime.now(UTC)), "comment": comment}
    model = req.doc["model"]
    statement = make_statement(model["name"], req.weights_sha256, "approval", predicate)
    write_atomic(output, sign_envelope(statement, [key]).to_json())
    summary = {**s, "signed_by": {"identity": identity.name, "role": identity.role},
               "approval": str(output), "change_classes": req.doc["change_classes"]}
    text = (_status_text(s) + f"\n  change classes: {', '.join(req.doc['change_classes'])}"
            + f"\nsigned as {identity.name} ({identity.role}) -> {output}")
    emit(fmt, json.loads(json.dumps(summary, default=str)), text)
