"""``slmgate policy check --policies ROOT``, failing at the first decision case that fails.

The mutation runner's check for a Rego mutant: the same command, through the same code, with the
same verdict, except that it stops at the first failing case (or policy error) instead of
evaluating all of them first; a mutant costs a fraction of a full check. ENGINE (default: the
default engine, regorus) runs the decision cases on another embedded engine, as
``tests/engine/policy/test_engine_parity.py`` does: a mutant that one engine's quirks hide
must still be caught by the engine that has none. Not for anything else.

    python tests/mutation/policy_check_fast.py ROOT [ENGINE]
"""

from __future__ import annotations

import sys
from typing import Any

from slmgate.engine.cli import main as cli
from slmgate.engine.policy import _engines, _policytest
from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.evidence.errors import PolicyError


def _fail_fast(engine_name: str) -> None:
    compare, checked = _policytest._compare, _policytest.checked_policy_output
    make_engine = _engines.embedded_engine

    def first_problem(decision: dict[str, Any], expect: dict[str, Any]) -> list[str]:
        problems = compare(decision, expect)
        if problems:
            sys.exit(f"a decision case fails: {problems}")
        return problems

    def checked_or_exit(output: dict[str, Any]) -> dict[str, Any]:
        try:
            return checked(output)
        except PolicyError as exc:
            sys.exit(f"policy error: {exc}")

    def engine_exiting_on_error(bundle: PolicyBundle, name: str = engine_name) -> Any:
        engine = make_engine(bundle, name)
        evaluate = engine.evaluate

        def evaluate_or_exit(facts: dict[str, Any]) -> dict[str, Any]:
            try:
                return evaluate(facts)
            except PolicyError as exc:
                sys.exit(f"policy error: {exc}")

        engine.evaluate = evaluate_or_exit  # type: ignore[method-assign]
        return engine

    # `policy check` imports these names from their modules when it runs, after this patching.
    _policytest._compare = first_problem  # type: ignore[assignment]
    _policytest.checked_policy_output = checked_or_exit  # type: ignore[assignment]
    _engines.embedded_engine = engine_exiting_on_error  # type: ignore[assignment]


if __name__ == "__main__":
    _fail_fast(sys.argv[2] if len(sys.argv) > 2 else _engines.DEFAULT_ENGINE)
    cli(["policy", "check", "--policies", sys.argv[1]])
