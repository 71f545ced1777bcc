"""`python -m slmgate.engine.cli._main`: the same as the `slmgate` command."""

from slmgate.engine.cli._main import main

main(prog_name="slmgate")
