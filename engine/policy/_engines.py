"""The in-process engines that evaluate the policy, chosen by name (``--engine``).

``regorus`` (default): microsoft/regorus through its Python bindings, Go-compatible formatting,
1–3 ms a decision. ``regopy``: the reference Rego interpreter's Python bindings, kept selectable
and in the parity table. Both return the same decision object byte for byte once it is made
engine-neutral (``_decision.checked_policy_output``); ``tests/engine/policy/test_engine_parity.py``
checks every decision case on every engine, the OPA-server backend included.
"""

from __future__ import annotations

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._evaluate import DecisionEngine
from slmgate.evidence.errors import InputError

__all__ = ["DEFAULT_ENGINE", "EMBEDDED_ENGINES", "embedded_engine"]

EMBEDDED_ENGINES = ("regorus", "regopy")
DEFAULT_ENGINE = "regorus"


def embedded_engine(bundle: PolicyBundle, name: str = DEFAULT_ENGINE) -> DecisionEngine:
    """The bundle's policy compiled for the in-process engine ``name``."""
    if name == "regorus":
        from slmgate.engine.policy._regorus import RegorusPolicy

        return RegorusPolicy(bundle)
    if name == "regopy":  # imported only when chosen
        from slmgate.engine.policy._embedded import CompiledPolicy

        return CompiledPolicy(bundle)
    raise InputError(f"unknown engine {name!r}; expected one of {', '.join(EMBEDDED_ENGINES)}",
                     field="--engine")
