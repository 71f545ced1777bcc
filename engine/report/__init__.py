"""The program report: the three executive trajectories against the charter's baselines and
targets, the risk note and the model council's page, built from the ledger's verified records
and the policy bundle; as PDF/A-3b (the packets' pipeline), standalone HTML or JSON.

May import: ``engine.packet``, ``engine.ops``, ``engine.deploy``, ``engine.ledger``,
``engine.policy``, ``engine.request``, ``slmgate.evidence``. Never the main path or the CLI.
"""
