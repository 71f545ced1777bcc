"""The policy: the bundle (YAML validated with cerberus, Rego), the facts built from verified
evidence, the engines that evaluate it (embedded regopy, an OPA server), the decision and the
policy tests; and ``_evaluate``, which decides one promotion (bind, verify, facts, evaluate).

May import: ``engine.request``, ``engine._schemas``, ``slmgate.evidence``. Never the ledger,
the packet, the main path or the CLI.
"""
