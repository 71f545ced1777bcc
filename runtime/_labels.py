"""The support-triage queues: where a ticket can be routed, and the privacy escalation queue."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("billing", "technical", "account", "shipping", "human_review")
QUEUES: tuple[str, ...] = LABELS[:4]
ESCALATION = "human_review"
