"""What every `slmgate` command shares: the output-format and policies options, printing, and
the one place errors become exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from slmgate.engine.policy import _decision as exits
from slmgate.evidence.errors import InputError, SlmgateError

P = ParamSpec("P")
R = TypeVar("R")

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="How results are printed on stdout.")
POLICIES = click.option(
    "--policies", "policies", type=click.Path(path_type=Path), envvar="SLMGATE_POLICIES",
    default=Path("policies"), show_default=True,
    help="Policy repository (charter.yaml, tiers.yaml, trust.yaml, rego/ ...). Env: SLMGATE_POLICIES.",
)


def exit_code_for(exc: BaseException) -> int:
    """2 for invalid input; 4 for evidence, policy and internal errors — never an approval."""
    if isinstance(exc, InputError):
        return exits.EXIT_INVALID_INPUT
    return exits.EXIT_UNVERIFIED


def _fail(exc: BaseException) -> NoReturn:
    if isinstance(exc, SlmgateError):
        click.echo(f"error: {exc.diagnostics()}", err=True)
    else:
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        if os.environ.get("SLMGATE_DEBUG"):
            raise exc
    sys.exit(exit_code_for(exc))


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command body, turning any exception into its message and exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            _fail(exc)

    return wrapper


def emit(fmt: str, doc: Any, text: str) -> None:
    """Print a result on stdout as JSON or as text."""
    click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str) if fmt == "json" else text)
