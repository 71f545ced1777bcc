"""A click group whose subcommands are imported when they are used, not when the CLI starts."""

from __future__ import annotations

import importlib
from typing import Any

import click


def _load(target: str) -> click.Command:
    module, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):  # a wiring mistake, caught by the CLI tests
        raise TypeError(f"{target} is not a click command")
    return command


class LazyGroup(click.Group):
    """``lazy_commands`` maps a command name to ``module:attribute`` targets; the first is the
    command, the others are modules that add subcommands to it (imported for that effect)."""

    def __init__(self, *args: Any, lazy_commands: dict[str, tuple[str, ...]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        targets = self.lazy_commands.get(cmd_name)
        if targets is None:
            return super().get_command(ctx, cmd_name)
        command = _load(targets[0])
        for extra in targets[1:]:
            _load(extra)
        return command
