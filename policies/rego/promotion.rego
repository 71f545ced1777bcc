# The promotion decision. Default deny: `approve` only when every required check is positively
# satisfied, never merely because nothing fired. Facts arrive in `input` (built in Python, all time
# arithmetic done there); the bundle's YAML arrives in `data.slmgate`.
#
# Written for the embedded engine's (regopy 1.5) known limits: no `with` (it aborts the process),
# no comprehensions over function parameters (they are mis-bound), no two-variable `some k, v in`
# inside comprehensions. The tests under ../tests/ run through the same compiled entrypoint.
package slmgate.promotion

import rego.v1

tiers := data.slmgate.tiers

gates := data.slmgate.gates

# ---------------------------------------------------------------- tier

unknown_change_classes contains c if {
	some c in input.request.change_classes
	not tiers.change_classes[c]
}

class_ranks contains tiers.tiers[tiers.change_classes[c].tier].rank if {
	some c in input.request.change_classes
}

# The heaviest tier among the change classes; undefined when a class is unknown or none given.
tier := name if {
	count(unknown_change_classes) == 0
	count(class_ranks) > 0
	top := max(class_ranks)
	some name, t in tiers.tiers
	t.rank == top
}

default decision_tier := "unknown"

decision_tier := t if t := tier

# ---------------------------------------------------------------- checks

check(rule_id, passed, severity, message, ref) := {
	"rule_id": rule_id,
	"passed": passed,
	"severity": severity,
	"message": message,
	"evidence_ref": ref,
}

checks contains check("request.change_classes", passed, "deny", msg, "request") if {
	passed := count(unknown_change_classes) == 0
	unknown := [c | some c in unknown_change_classes]
	msg := sprintf("change classes %v (unknown: %v)", [input.request.change_classes, unknown])
}

checks contains check("evidence.verified", passed, "deny", msg, "evidence") if {
	passed := count(input.evidence.rejected) == 0
	refs := [sprintf("%s (%s: %s)", [r.ref, r.step, r.reason]) | some r in input.evidence.rejected]
	msg := sprintf("%d envelope(s) refused %v", [count(refs), refs])
}

checks contains check(sprintf("evidence.present.%s", [kind]), passed, "deny", msg, kind) if {
	some kind in tiers.tiers[tier].requires_evidence
	passed := kind in input.evidence.present
	msg := sprintf("the %s tier requires verified %s evidence", [tier, kind])
}

checks contains check("evidence.eval.baseline", passed, "deny", msg, "eval-result") if {
	"eval-result" in input.evidence.present
	passed := object.get(input.evidence, ["eval", "baseline_matches"], false) == true
	msg := "the eval must compare the candidate with the baseline named in the request"
}

# Eval gates: one check per (layer, metric, bound) in gates.yaml.
checks contains gate_check(layer, name, bound, limit, reported) if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	some bound, limit in gate
	reported := object.get(input.evidence, ["eval", "layers", layer, name], null)
}

gate_check(layer, name, bound, _, null) := check(
	sprintf("gate.%s.%s.%s", [layer, name, bound]), false, "deny",
	sprintf("%s %s was not reported by a verified eval-result", [layer, name]), "eval-result",
)

gate_check(layer, name, "min", limit, m) := check(
	sprintf("gate.%s.%s.min", [layer, name]), m.candidate >= limit, "deny",
	sprintf("%s %s %v, minimum %v", [layer, name, m.candidate, limit]), "eval-result",
) if m != null

gate_check(layer, name, "max", limit, m) := check(
	sprintf("gate.%s.%s.max", [layer, name]), m.candidate <= limit, "deny",
	sprintf("%s %s %v, maximum %v", [layer, name, m.candidate, limit]), "eval-result",
) if m != null

gate_check(layer, name, "max_drop", limit, m) := check(
	sprintf("gate.%s.%s.max_drop", [layer, name]), m.drop <= limit, "deny",
	sprintf("%s %s moved %v -> %v (drop %v, at most %v)", [layer, name, m.baseline, m.candidate, m.drop, limit]),
	"eval-result",
) if m != null

# Serving SLOs, measured on the device named in the serving-config evidence.
checks contains slo_check(name, bound, limit, reported) if {
	some name, slo in gates.serving
	some bound, limit in slo
	reported := object.get(input.evidence, ["serving", name], null)
}

slo_check(name, bound, _, null) := check(
	sprintf("slo.%s.%s", [name, bound]), false, "deny",
	sprintf("%s was not reported by a verified serving-config", [name]), "serving-config",
)

slo_check(name, "max", limit, v) := check(
	sprintf("slo.%s.max", [name]), v <= limit, "deny",
	sprintf("%s %v, maximum %v", [name, v, limit]), "serving-config",
) if v != null

slo_check(name, "min", limit, v) := check(
	sprintf("slo.%s.min", [name]), v >= limit, "deny",
	sprintf("%s %v, minimum %v", [name, v, limit]), "serving-config",
) if v != null

# Human approvals the tier asks for, counted over distinct signers bound to this request.
approvers[role] := signers if {
	some required in tiers.tiers[tier].approvals
	role := required.role
	signers := {a.signer |
		some a in input.evidence.approvals
		a.role == role
		a.request_bound == true
	}
}

checks contains check(sprintf("approval.%s", [a.role]), have >= a.count, "review", msg, "approval") if {
	some a in tiers.tiers[tier].approvals
	have := count(approvers[a.role])
	msg := sprintf("the %s tier needs %d %s approval(s), has %d", [tier, a.count, a.role, have])
}

approvals_needed contains {"role": a.role, "count": a.count - have} if {
	some a in tiers.tiers[tier].approvals
	have := count(approvers[a.role])
	have < a.count
}

# ---------------------------------------------------------------- waivers

# Only gates and SLOs can be waived; evidence, request and approval checks never are.
waivable(rule_id) if startswith(rule_id, "gate.")

waivable(rule_id) if startswith(rule_id, "slo.")

waived contains c.rule_id if {
	some c in checks
	c.passed == false
	waivable(c.rule_id)
	some w in input.waivers.active
	w.rule_id == c.rule_id
}

waivers_applied contains w if {
	some w in input.waivers.active
	w.rule_id in waived
}

# ---------------------------------------------------------------- findings and outcome

findings contains object.remove(c, ["passed"]) if {
	some c in checks
	c.passed == false
	not c.rule_id in waived
}

findings contains f if {
	some c in checks
	c.rule_id in waived
	f := {
		"rule_id": c.rule_id, "severity": "info", "evidence_ref": c.evidence_ref,
		"message": sprintf("waived: %s", [c.message]),
	}
}

deny_findings := {f | some f in findings; f.severity == "deny"}

review_findings := {f | some f in findings; f.severity == "review"}

satisfied contains c.rule_id if {
	some c in checks
	c.passed == true
}

satisfied contains rule_id if some rule_id in waived

all_checks_satisfied if {
	tier
	count(checks) > 0
	every c in checks {
		c.rule_id in satisfied
	}
}

default outcome := "deny"

outcome := "deny" if {
	count(deny_findings) > 0
} else := "review" if {
	count(review_findings) > 0
} else := "approve" if {
	all_checks_satisfied
}

default decision := {
	"outcome": "deny",
	"tier": "unknown",
	"findings": [{
		"rule_id": "policy.undefined", "severity": "deny", "evidence_ref": "policy",
		"message": "the policy produced no decision for these facts",
	}],
	"checks": [],
	"approvals_needed": [],
	"waivers_applied": [],
	"waivers_expired": [],
}

decision := {
	"outcome": outcome,
	"tier": decision_tier,
	"findings": [f | some f in findings],
	"checks": [object.remove(c, ["severity"]) | some c in checks],
	"approvals_needed": [a | some a in approvals_needed],
	"waivers_applied": [w | some w in waivers_applied],
	"waivers_expired": input.waivers.expired,
}
