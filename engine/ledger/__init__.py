"""The git ledger of signed decision records: the store (atomic, hash-chained appends), its
history, verification and checkpoints, replay and what-if (re-evaluating history under a
bundle), the decision log and the OSCAL and JUnit exports.

May import: ``engine.policy``, ``engine.request``, ``engine._schemas``, ``slmgate.evidence``.
Never the packet, the main path or the CLI.
"""
