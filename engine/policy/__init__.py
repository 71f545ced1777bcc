"""The policy: the bundle (YAML validated with cerberus, Rego), the facts built from verified
evidence, the engines that evaluate it (embedded regopy, an OPA server), the decision and the
policy tests; the control mapping (which SOC 2, ISO/IEC 42001 and EU AI Act controls each rule
evidences, read by the packet and the OSCAL export); and ``_evaluate``, which decides one
promotion (bind, verify, facts, evaluate).

May import: ``engine.request``, ``engine._schemas``, ``slmgate.evidence``. Never the ledger,
the packet, the main path or the CLI.
"""
