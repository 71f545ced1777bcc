"""The main path of one promotion: decide (``policy``: bind, verify, facts, evaluate), sign the
decision record, record it in the ledger and render the packet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._decision import Decision
from slmgate.engine.request._request import PromotionRequest
from slmgate.evidence import SigningKey, make_statement, sign_envelope

if TYPE_CHECKING:  # the ledger (and git) is imported only by a promotion that records
    from slmgate.engine.ledger._store import Ledger, LedgerEntry


def sign_decision_record(decision: Decision, key: SigningKey) -> bytes:
    """The decision as a signed in-toto statement about the candidate's weights."""
    predicate = {"decided_at": decision.evaluated_at, "decision": decision.to_json()}
    model = decision.request["model"]
    statement = make_statement(model["name"], model["weights_digest"].removeprefix("sha256:"),
                               "decision-record", predicate)
    return sign_envelope(statement, [key]).to_json()


def record_in_ledger(
    ledger: Ledger, decision: Decision, record: bytes, request: PromotionRequest,
    evidence: Sequence[bytes], bundle: PolicyBundle,
) -> LedgerEntry:
    """Commit the signed record with the request, its evidence (by ref, in request order) and
    the bundle's files, chained to the previous decision; see ``_ledger`` for the protocol."""

    model = decision.request["model"]
    message = (f"{decision.outcome}: {model['name']} {model['version']} ({decision.id})\n\n"
               f"{decision.summary()}\n\nrequest: {request.id}\nbundle: {decision.bundle_digest}\n"
               f"policy-revision: {decision.policy_revision or 'none'}\n")
    refs = [item.ref for item in request.evidence]
    return ledger.record(
        decision.id, record, request.raw, list(zip(refs, evidence, strict=True)),
        outcome=decision.outcome, bundle=dict(bundle.files),
        bundle_digest=decision.bundle_digest, policy_revision=decision.policy_revision,
        message=message,
    )
