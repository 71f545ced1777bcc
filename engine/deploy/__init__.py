"""Deployments after the decision: the weights served in each region re-hashed and checked
against a recorded approval and the charter's residency (`slmgate deploy verify`), recorded as
gate-signed deployment attestations in the ledger, and the state of every region read back from
them (`slmgate deploy status`).

May import: ``engine.ledger``, ``engine.policy``, ``engine.request``, ``slmgate.evidence``.
Never the packet, the main path or the CLI.
"""
