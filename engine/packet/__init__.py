"""The auditor packet (PDF/A-3b) and the GDPR Art. 30 records of processing: what goes in
(content, view model, charts, control mapping, attachments), rendering, and ``packet verify``.

May import: ``engine.ledger``, ``engine.policy``, ``engine.request``, ``slmgate.evidence``.
Never the main path or the CLI. WeasyPrint is imported only by the modules that render.
"""
