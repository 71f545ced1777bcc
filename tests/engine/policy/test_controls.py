"""The control mapping shared by the packet and the OSCAL export: ids that are OSCAL tokens, one
per printed control, and rules matched by id or by prefix."""

from __future__ import annotations

import re

from slmgate.engine.policy._controls import CONTROLS, controls_for, oscal_token

# OSCAL's token datatype (ASCII subset): what control-id and prop class must match.
TOKEN = re.compile(r"^[_A-Za-z][_A-Za-z0-9.\-]*$")


def test_control_ids_are_oscal_tokens_one_per_printed_control() -> None:
    assert oscal_token("Annex IV(2)") == "annex-iv.2"
    assert oscal_token("ISO/IEC 42001") == "iso-iec-42001"
    labels = {(c.framework, c.control) for c in CONTROLS}
    ids = {(c.framework_id, c.control_id) for c in CONTROLS}
    assert len(ids) == len(labels)  # no two printed controls share an id
    assert all(TOKEN.match(f) and TOKEN.match(i) for f, i in ids)


def test_a_rule_is_covered_by_id_or_by_a_prefix_ending_in_a_dot() -> None:
    assert [c.control for c in controls_for("request.change_classes")] == ["CC8.1", "Annex IV(6)"]
    assert controls_for("request.change_classes_extra") == ()  # an id is matched whole
    assert [c.title for c in controls_for("slo.latency_p95_ms.max")] == [
        "Change tested", "AI system operation and monitoring", "Monitoring, functioning and control"]
    assert controls_for("gate") == ()  # "gate." is a prefix: the bare word is not under it
