"""``slmgate policy check --policies ROOT``, failing at the first decision case that fails.

The mutation runner's check for a Rego mutant: the same command, through the same code, with the
same verdict, except that it stops at the first failing case (or policy error) instead of
evaluating all of them first; a mutant costs a fraction of a full check. Not for anything else.

    python tests/mutation/policy_check_fast.py ROOT
"""

from __future__ import annotations

import sys
from typing import Any

from slmgate.engine import _policy, _policytest
from slmgate.engine.cli import main as cli


def _fail_fast() -> None:
    compare, evaluate = _policytest._compare, _policy.CompiledPolicy.evaluate
    checked = _policytest.checked_policy_output

    def first_problem(decision: dict[str, Any], expect: dict[str, Any]) -> list[str]:
        problems = compare(decision, expect)
        if problems:
            sys.exit(f"a decision case fails: {problems}")
        return problems

    def evaluate_or_exit(self: _policy.CompiledPolicy, facts: Any) -> Any:
        try:
            return evaluate(self, facts)
        except _policy.PolicyError as exc:
            sys.exit(f"policy error: {exc}")

    def checked_or_exit(output: dict[str, Any]) -> dict[str, Any]:
        try:
            return checked(output)
        except _policy.PolicyError as exc:
            sys.exit(f"policy error: {exc}")

    _policytest._compare = first_problem  # type: ignore[assignment]
    _policytest.checked_policy_output = checked_or_exit  # type: ignore[assignment]
    _policy.CompiledPolicy.evaluate = evaluate_or_exit  # type: ignore[method-assign]


if __name__ == "__main__":
    _fail_fast()
    cli(["policy", "check", "--policies", sys.argv[1]])
