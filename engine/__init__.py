"""The gate: policy bundles, facts, Rego evaluation, decisions, the ledger, packets and the CLI.

``slmgate promote`` runs from here and never imports torch.
"""

from ._bundle import BundleInvalid, PolicyBundle, load_bundle
from ._decision import Decision
from ._ledger import Ledger, LedgerEntry
from ._policy import CompiledPolicy
from ._evaluate import PromotionResult, evaluate_promotion
from ._promote import sign_decision_record
from ._request import PromotionRequest, approval_digest, load_request

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
