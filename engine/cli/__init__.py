"""The `slmgate` command line: one module per command group, the shared options, and the one
place errors become exit codes (``_common``). The top of the import graph: it may import every
room and the main path; nothing imports it.
"""

from slmgate.engine.cli._main import main

__all__ = ["main"]
