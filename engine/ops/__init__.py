"""Operations after the promotion: a week of the model in service as signed evidence — a
monitoring export (CSV or JSON, one row per ISO week) turned into ``ops-metrics`` predicates
under the charter's cost model (`slmgate ops import`), and such statements verified against the
trust policy before the ledger keeps them (`slmgate ledger record`).

May import: ``engine.ledger``, ``engine.policy``, ``engine.request``, ``slmgate.evidence``.
Never the packet, the report, the main path or the CLI.
"""
