"""The gate: policy bundles, facts, Rego evaluation, decisions, the ledger, packets and the CLI.

``slmgate promote`` runs from here and never imports torch.
"""

from slmgate.engine.ledger._store import Ledger, LedgerEntry
from slmgate.engine.policy._bundle import BundleInvalid, PolicyBundle, load_bundle
from slmgate.engine.policy._decision import Decision
from slmgate.engine.policy._embedded import CompiledPolicy
from slmgate.engine.policy._evaluate import PromotionResult, evaluate_promotion
from slmgate.engine.promote import sign_decision_record
from slmgate.engine.request._request import PromotionRequest, approval_digest, load_request

__all__ = [
    "BundleInvalid",
    "CompiledPolicy",
    "Decision",
    "Ledger",
    "LedgerEntry",
    "PolicyBundle",
    "PromotionRequest",
    "PromotionResult",
    "approval_digest",
    "evaluate_promotion",
    "load_bundle",
    "load_request",
    "sign_decision_record",
]
