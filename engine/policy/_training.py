"""Training provenance: data cards bound to the verified training-run, and the training facts
the policy judges them by.

Every other statement is about the candidate's weights and is verified with
``subject_sha256`` = the weights root digest. A data card is about a *dataset*: its subject is
the dataset's content digest. So data cards are verified with ``subject_sha256=None`` (every
other step of ``verify_envelope`` still runs) and then bound here, by their own rule:

    a data card counts only when its subject digest is a ``training-data`` dependency of the
    verified training-run (whose subject is the candidate's weights), or — for derivative
    datasets — the source digest named by a card that counts.

A verified card that binds to nothing is refused (step ``subject``), as an eval about other
weights would be; two cards about one dataset are ambiguous and both are refused. Binding is a
closure over digests, so it never depends on the order of the envelopes.

The facts (``training_facts``) flatten each dataset's derivative chain — the dataset, its
source, the source's source… — into a list, since Rego cannot recurse; every link carries its
card (or ``null``) with ages computed in Python. The policy judges each link.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from slmgate.evidence import (
    PREDICATE_TYPES,
    Envelope,
    TrustPolicy,
    VerificationResult,
    VerifiedEvidence,
    verify_envelope,
)
from slmgate.evidence.errors import EvidenceInvalid, InputError, KeyNotAuthorizedError

# How far a derivative chain is followed; a longer one is reported as cut (and denied).
MAX_CHAIN = 8


def binds_to_weights(raw: bytes) -> bool:
    """Whether the envelope is verified against the candidate's weights (every kind but the
    data card). Read from the payload before verification only to pick the binding rule: the
    verified kind must then agree (``verify_request_evidence`` refuses an envelope whose
    verified kind is not a data card but was verified unbound)."""
    try:
        body = Envelope.from_json(raw).payload
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:  # NaN, a number beyond a double: json's reading of them
            payload = json.loads(body)
        return not (isinstance(payload, dict)
                    and payload.get("predicateType") == PREDICATE_TYPES["data-card"])
    except Exception:
        return True


def _dataset_deps(run: VerifiedEvidence) -> list[dict[str, str]]:
    return [{"name": d["name"], "sha256": d["digest"]["sha256"]}
            for d in run.statement.predicate["resolved_dependencies"] if d["role"] == "training-data"]


def _card_subject(card: VerifiedEvidence) -> str:
    return card.statement.subjects[0][1]


def _card_source(card: VerifiedEvidence) -> str | None:
    p = card.statement.predicate["provenance"]
    if p["category"] != "derivative":
        return None
    return str(p["origin"]["digest"]["sha256"])


def bind_data_cards(
    verified: Sequence[VerifiedEvidence],
) -> tuple[list[VerifiedEvidence], list[VerificationResult]]:
    """Keep the evidence that is not a data card, and the data cards bound to the verified
    training-run (see the module docstring); refuse the rest with a reason naming the digest."""
    cards = [ev for ev in verified if ev.kind == "data-card"]
    others = [ev for ev in verified if ev.kind != "data-card"]
    if not cards:
        return others, []
    runs = [ev for ev in others if ev.kind == "training-run"]
    refused: list[VerificationResult] = []
    # A card speaks about exactly one dataset: its one subject, which its predicate repeats.
    single = [c for c in cards if len(c.statement.subjects) == 1
              and c.statement.predicate["dataset"]["digest"]["sha256"] == _card_subject(c)]
    refused.extend(_refusal(c, "subject", "a data card has exactly one subject, the digest its "
                            "predicate's dataset.digest repeats") for c in cards if c not in single)
    cards = single
    by_digest: dict[str, list[VerifiedEvidence]] = {}
    for card in cards:
        by_digest.setdefault(_card_subject(card), []).append(card)
    ambiguous = {d for d, items in by_digest.items() if len(items) > 1}
    for digest in sorted(ambiguous):
        refs = ", ".join(c.ref for c in by_digest[digest])
        refused.extend(_refusal(c, "ambiguous", f"{len(by_digest[digest])} data cards about "
                                f"dataset sha256:{digest[:16]}… ({refs}); exactly 1 allowed")
                       for c in by_digest[digest])
    wanted = [d["sha256"] for run in runs[:1] for d in _dataset_deps(run)]
    bound: dict[str, VerifiedEvidence] = {}
    while wanted:
        digest = wanted.pop()
        if digest in bound or digest in ambiguous or digest not in by_digest:
            continue
        card = bound[digest] = by_digest[digest][0]
        source = _card_source(card)
        if source is not None:
            wanted.append(source)
    kept_ids = {id(c) for c in bound.values()}
    refused_ids = {id(c) for d in ambiguous for c in by_digest[d]}
    for card in cards:
        if id(card) in kept_ids or id(card) in refused_ids:
            continue
        got = _card_subject(card)[:16]
        why = ("no verified training-run names its datasets" if not runs else
               "neither the verified training-run nor a bound card's derivative source names it")
        refused.append(_refusal(card, "subject", f"data card about dataset sha256:{got}…: {why}"))
    kept_cards = [c for c in cards if id(c) in kept_ids]
    return others + kept_cards, refused


def _refusal(ev: VerifiedEvidence, step: str, reason: str) -> VerificationResult:
    return VerificationResult(ref=ev.ref, envelope_sha256=ev.envelope_sha256, verified=False,
                              kind=ev.kind, failed_step=step, reason=reason)


def _days_since(text: str, now: datetime) -> int | None:
    try:
        return (now.date() - date.fromisoformat(text)).days
    except (TypeError, ValueError):
        return None  # unreadable date: the policy sees null and refuses


def card_facts(card: VerifiedEvidence, now: datetime) -> dict[str, Any]:
    """One verified data card as the policy (and the packet) sees it; ages in whole days
    (negative: a date in the future)."""
    p = card.statement.predicate
    origin = p["provenance"]["origin"]
    derivative = p["provenance"]["category"] == "derivative"
    source = (origin.get("digest") or {}).get("sha256") if derivative else None
    return {
        "ref": card.ref,
        "dataset": p["dataset"]["name"],
        "sha256": _card_subject(card),
        "category": p["provenance"]["category"],
        "origin": origin["name"],
        "source_sha256": source,
        "purpose": p["purpose"],
        "lawful_basis": p["lawful_basis"],
        "oldest_record": p["records"]["oldest"],
        "newest_record": p["records"]["newest"],
        "age_days": _days_since(p["records"]["oldest"], now),
        "newest_age_days": _days_since(p["records"]["newest"], now),
        "rows": p["records"]["rows"],
        "pii": {"scan": p["pii"]["scan"], "redaction": p["pii"]["redaction"]},
        "access_role": p["access_role"],
        "signers": sorted(s.principal for s in card.signers),
    }


def _chain(name: str, digest: str, cards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The dataset and its derivative sources, in order; ``cut`` when the chain loops or runs
    past ``MAX_CHAIN`` links."""
    links: list[dict[str, Any]] = []
    seen: set[str] = set()
    expected_name: str | None = name
    while True:
        if digest in seen or len(links) >= MAX_CHAIN:
            return {"links": links, "cut": True}
        seen.add(digest)
        card = cards.get(digest)
        links.append({"named": expected_name, "sha256": digest, "card": card})
        if card is None or card["source_sha256"] is None:
            return {"links": links, "cut": False}
        expected_name, digest = card["origin"], card["source_sha256"]


def training_facts(verified: Sequence[VerifiedEvidence], now: datetime) -> dict[str, Any]:
    """``run``: the verified training-run (builder, datasets and base model by digest) or
    ``None``; ``datasets``: one entry per training-data dependency of the run, with its
    derivative chain of verified cards."""
    runs = [ev for ev in verified if ev.kind == "training-run"]
    if not runs:
        return {"run": None, "datasets": []}
    run = runs[0]
    p = run.statement.predicate
    cards = {c["sha256"]: c for c in (card_facts(ev, now) for ev in verified if ev.kind == "data-card")}
    deps = _dataset_deps(run)
    base = [d for d in p["resolved_dependencies"] if d["role"] == "base-model"]
    return {
        "run": {
            "ref": run.ref, "builder": p["builder"]["id"], "build_type": p["build_type"],
            "signers": sorted(s.principal for s in run.signers),
            "base_model": ({"name": base[0]["name"], "sha256": base[0]["digest"]["sha256"]}
                           if base else None),
        },
        "datasets": [{"name": d["name"], "sha256": d["sha256"], **_chain(d["name"], d["sha256"], cards)}
                     for d in deps],
    }


def load_data_cards(folder: Path, trust: TrustPolicy, now: datetime) -> list[dict[str, Any]]:
    """Every ``*.dsse.json`` in ``folder`` verified as a data card under ``trust`` (unbound: no
    promotion to bind it to), as ``card_facts``. One that does not verify, or is not a data
    card, raises the verification error naming its file: a record of processing is never built
    on an unverified card."""
    if not folder.is_dir():
        raise InputError("is not a directory", file=str(folder), field="--data-cards")
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.dsse.json")):
        if not path.is_file() or path.is_symlink():
            raise InputError("is not a regular file", file=str(path))
        raw = path.read_bytes()
        try:
            ev = verify_envelope(raw, trust, subject_sha256=None, now=now, ref=path.name)
            if ev.kind != "data-card":
                raise KeyNotAuthorizedError(f"holds a {ev.kind} statement, not a data card")
        except EvidenceInvalid as exc:
            exc.message = f"{path}: {exc.step}: {exc.message}"  # name the file, keep the step
            raise
        card = card_facts(ev, now)
        cards[card["sha256"]] = card
    return sorted(cards.values(), key=lambda c: (c["purpose"], c["dataset"], c["sha256"]))
