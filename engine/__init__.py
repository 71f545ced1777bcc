"""The gate: policy bundles, facts, Rego evaluation, decisions, the ledger, packets and the CLI.

``slmgate promote`` runs from here and never imports torch. The names below are imported on
first use (PEP 562), so that a command loads only the rooms it needs: a promote without
``--ledger`` or ``--packet`` never imports git, Jinja or WeasyPrint.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "BundleInvalid": "slmgate.engine.policy._bundle",
    "CompiledPolicy": "slmgate.engine.policy._embedded",
    "Decision": "slmgate.engine.policy._decision",
    "Ledger": "slmgate.engine.ledger._store",
    "LedgerEntry": "slmgate.engine.ledger._store",
    "PolicyBundle": "slmgate.engine.policy._bundle",
    "PromotionRequest": "slmgate.engine.request._request",
    "PromotionResult": "slmgate.engine.policy._evaluate",
    "approval_digest": "slmgate.engine.request._request",
    "evaluate_promotion": "slmgate.engine.policy._evaluate",
    "load_bundle": "slmgate.engine.policy._bundle",
    "load_request": "slmgate.engine.request._request",
    "sign_decision_record": "slmgate.engine.promote",
}

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

if TYPE_CHECKING:
    from slmgate.engine.ledger._store import Ledger, LedgerEntry
    from slmgate.engine.policy._bundle import BundleInvalid, PolicyBundle, load_bundle
    from slmgate.engine.policy._decision import Decision
    from slmgate.engine.policy._embedded import CompiledPolicy
    from slmgate.engine.policy._evaluate import PromotionResult, evaluate_promotion
    from slmgate.engine.promote import sign_decision_record
    from slmgate.engine.request._request import PromotionRequest, approval_digest, load_request


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'slmgate.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
