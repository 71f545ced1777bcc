# The promotion decision. Default deny: `approve` only when every required check is positively
# satisfied, never merely because nothing fired. Facts arrive in `input` (built in Python, all time
# arithmetic done there); the bundle's YAML arrives in `data.slmgate`.
#
# Every check carries its rule id, severity, message, evidence reference and `explain`: the facts
# and policy data it used (`slmgate promote --explain` prints them).
#
# Written for the embedded engine's (regopy 1.5) known limits: no `with` (it aborts the process),
# no comprehensions over function parameters (they are mis-bound), no two-variable `some k, v in`
# inside comprehensions. The same module runs unchanged on an OPA server.
package slmgate.promotion

import rego.v1

tiers := data.slmgate.tiers

gates := data.slmgate.gates

charter := data.slmgate.charter

purposes := data.slmgate.purposes

subprocessors := data.slmgate.subprocessors.subprocessors

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

retrains if {
	some c in input.request.change_classes
	tiers.change_classes[c].retrains == true
}

# ---------------------------------------------------------------- checks

# x <= limit for a number x; false for null or anything else. (A bare `null <= 1` is true in
# Rego, whose ordering puts null below numbers: comparing unchecked facts would fail open.)
at_most(x, limit) := true if {
	is_number(x)
	x <= limit
} else := false

at_least(x, limit) := true if {
	is_number(x)
	x >= limit
} else := false

# A message is a format and its arguments, rendered in Python (engine/policy/_messages.py) the
# same way for every engine, as OPA's sprintf would: regopy 1.5 prints floats with 17 digits,
# does not know %q and carries quotes into some strings, so no message is formatted in Rego.
# Rule ids, which are compared, are still built with sprintf from strings alone.
fmt(format, args) := {"format": format, "args": args}

check(rule_id, passed, severity, message, ref, explain) := {
	"rule_id": rule_id,
	"passed": passed,
	"severity": severity,
	"message": message,
	"evidence_ref": ref,
	"explain": explain,
}

domain_checks contains check("request.change_classes", passed, "deny", msg, "request", explain) if {
	passed := count(unknown_change_classes) == 0
	unknown := sort(unknown_change_classes)
	msg := fmt("change classes %v (unknown: %v)", [input.request.change_classes, unknown])
	explain := {"facts": {"change_classes": input.request.change_classes}, "data": {"known": sort(object.keys(tiers.change_classes))}}
}

domain_checks contains check("evidence.verified", passed, "deny", msg, "evidence", explain) if {
	passed := count(input.evidence.rejected) == 0
	refs := [fmt("%s (%s: %s)", [r.ref, r.step, r.reason]) | some r in input.evidence.rejected]
	msg := fmt("%d envelope(s) refused %v", [count(refs), refs])
	explain := {"facts": {"rejected": input.evidence.rejected}, "data": {}}
}

domain_checks contains check(sprintf("evidence.present.%s", [kind]), passed, "deny", msg, kind, explain) if {
	some kind in tiers.tiers[tier].requires_evidence
	passed := kind in input.evidence.present
	msg := fmt("the %s tier requires verified %s evidence", [tier, kind])
	explain := {"facts": {"present": input.evidence.present}, "data": {"tier": tier, "requires_evidence": tiers.tiers[tier].requires_evidence}}
}

domain_checks contains check("evidence.eval.baseline", passed, "deny", msg, "eval-result", explain) if {
	"eval-result" in tiers.tiers[tier].requires_evidence
	passed := object.get(input.evidence, ["eval", "baseline_matches"], false) == true
	msg := "the eval must compare the candidate with the baseline named in the request"
	explain := {"facts": {"baseline_matches": object.get(input.evidence, ["eval", "baseline_matches"], null), "baseline": object.get(input.request, "baseline", null)}, "data": {}}
}

# The model's identity is the subject name of the signed weights manifest; every verified
# statement about the candidate must give its weights that one name, and the request the same.
subject_names := object.get(input.evidence, ["subjects", "names"], [])

signed_model := object.get(input.evidence, ["subjects", "model"], null)

subject_name_matches := true if {
	count(subject_names) == 1
	signed_model == input.request.model.name
} else := false

domain_checks contains check("evidence.subject.name", subject_name_matches, "deny", msg, "weights-manifest", explain) if {
	msg := fmt("the request promotes %v; the signed weights manifest names it %v; the verified statements name it %v", [input.request.model.name, signed_model, subject_names])
	explain := {"facts": {"requested": input.request.model.name, "signed": signed_model, "names": subject_names}, "data": {}}
}

# A serving configuration is deployed as measured: the request states it (deployment.serving)
# and the verified serving-config must have measured exactly that, field by field.
serving_fields := ["device", "dtype", "batch_size", "quantization", "runtime_version"]

requested_serving := object.get(object.get(input.request, "deployment", {}), "serving", {})

measured_serving := object.get(input.evidence, "serving", {})

serving_expected if "serving-config" in tiers.tiers[tier].requires_evidence

serving_expected if count(requested_serving) > 0

serving_expected if count(measured_serving) > 0

serving_expected if count(gates.serving) > 0

serving_problems := array.concat(array.concat(
	[x | x := "the request does not state the serving configuration it deploys (deployment.serving)"; count(requested_serving) == 0],
	[x | x := "no verified serving-config measured it"; count(measured_serving) == 0]),
	[fmt("%s: requested %v, measured %v", [f, object.get(requested_serving, f, null), object.get(measured_serving, f, null)]) |
		count(requested_serving) > 0
		count(measured_serving) > 0
		some f in serving_fields
		object.get(requested_serving, f, null) != object.get(measured_serving, f, null)
	],
)

domain_checks contains check("evidence.serving.matches_request", passed, "deny", msg, "serving-config", explain) if {
	serving_expected
	passed := count(serving_problems) == 0
	msg := fmt("serving configuration: %v", [serving_problems])
	explain := {"facts": {"requested": requested_serving, "measured": {f: object.get(measured_serving, f, null) | some f in serving_fields}}, "data": {"fields": serving_fields}}
}

# Eval gates: one check per (layer, metric, bound) in gates.yaml.
domain_checks contains gate_check(layer, name, bound, limit, reported) if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	some bound, limit in gate
	reported := object.get(input.evidence, ["eval", "layers", layer, name], null)
}

# `gate` is the dotted path of the gate in gates.yaml. (Callers format it themselves: regopy 1.5
# renders a string literal passed as a function argument with its quotes when it reaches sprintf.)
gate_explain(gate, limit, m) := {"facts": {"metric": m}, "data": {"gate": gate, "limit": limit}}

gate_check(layer, name, bound, limit, null) := check(
	sprintf("gate.%s.%s.%s", [layer, name, bound]), false, "deny",
	fmt("%s %s was not reported by a verified eval-result", [layer, name]), "eval-result",
	gate_explain(sprintf("gates.eval.%s.%s.%s", [layer, name, bound]), limit, null),
)

gate_check(layer, name, "min", limit, m) := check(
	sprintf("gate.%s.%s.min", [layer, name]), at_least(m.candidate, limit), "deny",
	fmt("%s %s %v, minimum %v", [layer, name, m.candidate, limit]), "eval-result",
	gate_explain(sprintf("gates.eval.%s.%s.min", [layer, name]), limit, m),
) if m != null

gate_check(layer, name, "max", limit, m) := check(
	sprintf("gate.%s.%s.max", [layer, name]), at_most(m.candidate, limit), "deny",
	fmt("%s %s %v, maximum %v", [layer, name, m.candidate, limit]), "eval-result",
	gate_explain(sprintf("gates.eval.%s.%s.max", [layer, name]), limit, m),
) if m != null

# A drop needs a baseline; a metric reported without one fails this gate (fail closed).
gate_check(layer, name, "max_drop", limit, m) := check(
	sprintf("gate.%s.%s.max_drop", [layer, name]), passed, "deny", msg, "eval-result",
	gate_explain(sprintf("gates.eval.%s.%s.max_drop", [layer, name]), limit, m),
) if {
	m != null
	passed := at_most(m.drop, limit)
	msg := fmt("%s %s moved %v -> %v (drop %v, at most %v)", [layer, name, m.baseline, m.candidate, m.drop, limit])
}

# Serving SLOs, measured on the device named in the serving-config evidence.
domain_checks contains slo_check(name, bound, limit, reported) if {
	some name, slo in gates.serving
	some bound, limit in slo
	reported := object.get(input.evidence, ["serving", name], null)
}

slo_explain(slo, name, limit, v) := {"facts": {name: v, "device": object.get(input.evidence, ["serving", "device"], null)}, "data": {"slo": slo, "limit": limit}}

slo_check(name, bound, limit, null) := check(
	sprintf("slo.%s.%s", [name, bound]), false, "deny",
	fmt("%s was not reported by a verified serving-config", [name]), "serving-config",
	slo_explain(sprintf("gates.serving.%s.%s", [name, bound]), name, limit, null),
)

slo_check(name, "max", limit, v) := check(
	sprintf("slo.%s.max", [name]), at_most(v, limit), "deny",
	fmt("%s %v, maximum %v", [name, v, limit]), "serving-config",
	slo_explain(sprintf("gates.serving.%s.max", [name]), name, limit, v),
) if v != null

slo_check(name, "min", limit, v) := check(
	sprintf("slo.%s.min", [name]), at_least(v, limit), "deny",
	fmt("%s %v, minimum %v", [name, v, limit]), "serving-config",
	slo_explain(sprintf("gates.serving.%s.min", [name]), name, limit, v),
) if v != null

# ---------------------------------------------------------------- residency and purpose

deployment := object.get(input.request, "deployment", {})

serving_purpose := object.get(deployment, "purpose", "")

classes_involved := object.get(purposes.purposes, [serving_purpose, "data_classes"], [])

domain_checks contains check("purpose.serving", passed, "deny", msg, "request", explain) if {
	passed := purposes.purposes[serving_purpose] != null
	msg := fmt("the deployment serves purpose %q; declared purposes: %v", [serving_purpose, sort(object.keys(purposes.purposes))])
	explain := {"facts": {"deployment": deployment}, "data": {"purposes": sort(object.keys(purposes.purposes))}}
}

domain_checks contains check("purpose.serving", false, "deny", msg, "request", explain) if {
	not purposes.purposes[serving_purpose]
	msg := fmt("the deployment serves purpose %q, which purposes.yaml does not declare", [serving_purpose])
	explain := {"facts": {"deployment": deployment}, "data": {"purposes": sort(object.keys(purposes.purposes))}}
}

region_allowed(region, class) if region in charter.data_classes[class].residency

domain_checks contains check(sprintf("residency.region.%s", [region]), passed, "deny", msg, "request", explain) if {
	some region in object.get(deployment, "regions", [])
	outside := [c | some c in classes_involved; not region_allowed(region, c)]
	passed := count(outside) == 0
	msg := fmt("serving in %s; data classes whose residency excludes it: %v", [region, outside])
	explain := {"facts": {"region": region, "data_classes": classes_involved}, "data": {"residency": {c: charter.data_classes[c].residency | some c in classes_involved}}}
}

domain_checks contains check("residency.regions", false, "deny", msg, "request", explain) if {
	count(object.get(deployment, "regions", [])) == 0
	msg := "the request names no serving region; residency cannot be checked"
	explain := {"facts": {"deployment": deployment}, "data": {}}
}

sp_problems(name) := ["not declared in subprocessors.yaml"] if not subprocessors[name]

sp_problems(name) := problems if {
	sp := subprocessors[name] # only `sp` is used inside the comprehensions below
	untouched := [c | some c in classes_involved; not c in sp.data_classes]
	unsafe := [r | some r in sp.regions; some c in classes_involved; not region_allowed(r, c); not sp.transfer_safeguard]
	problems := array.concat(
		[fmt("not declared for data classes %v", [untouched]) | count(untouched) > 0],
		[fmt("processes in %v outside residency without a transfer safeguard", [unsafe]) | count(unsafe) > 0],
	)
}

domain_checks contains check(sprintf("residency.subprocessor.%s", [name]), passed, "deny", msg, "request", explain) if {
	some name in object.get(deployment, "subprocessors", [])
	problems := sp_problems(name)
	passed := count(problems) == 0
	msg := fmt("subprocessor %s on the serving path: %v", [name, problems])
	explain := {"facts": {"subprocessor": name, "data_classes": classes_involved}, "data": {"subprocessor": object.get(subprocessors, name, null)}}
}

training_data := object.get(input.request, "training_data", [])

domain_checks contains check("purpose.training_data", passed, "deny", msg, "request", explain) if {
	retrains
	passed := count(training_data) > 0
	msg := "a retrain must name its training datasets"
	explain := {"facts": {"training_data": training_data}, "data": {}}
}

dataset_problems(d) := ["not declared in purposes.yaml"] if not purposes.datasets[d.dataset]

dataset_problems(d) := problems if {
	ds := purposes.datasets[d.dataset]
	age := d.age_days # bound here: regopy mis-binds parameters used inside comprehensions
	uses := object.get(purposes.purposes, [ds.purpose, "uses"], [])
	problems := array.concat(
		[fmt("its purpose %s does not allow training", [ds.purpose]) | not "training" in uses],
		[fmt("oldest record %v days old, retention %v days", [age, ds.retention_days]) | not at_most(age, ds.retention_days)],
	)
}

domain_checks contains check(sprintf("purpose.dataset.%s", [d.dataset]), passed, "deny", msg, "request", explain) if {
	some d in training_data
	problems := dataset_problems(d)
	passed := count(problems) == 0
	msg := fmt("training dataset %s: %v", [d.dataset, problems])
	explain := {"facts": {"dataset": d}, "data": {"dataset": object.get(purposes.datasets, d.dataset, null)}}
}

# ---------------------------------------------------------------- rollback

rollback := object.get(input.evidence, "rollback", null)

rollback_problems := ["no verified rollback-plan"] if rollback == null

rollback_problems := problems if {
	rollback != null
	problems := array.concat(array.concat(
		[x | x := "no named owner"; object.get(rollback, "owner", "") == ""],
		[fmt("last drill %v days ago, at most %v", [rollback.drill_age_days, charter.rollback.drill_max_age_days]) |
			not at_most(rollback.drill_age_days, charter.rollback.drill_max_age_days)]),
		[fmt("rollback takes %v minutes, at most %v", [rollback.max_rollback_minutes, charter.rollback.max_rollback_minutes]) |
			not at_most(rollback.max_rollback_minutes, charter.rollback.max_rollback_minutes)],
	)
}

domain_checks contains check("rollback.plan", passed, "deny", msg, "rollback-plan", explain) if {
	"rollback-plan" in tiers.tiers[tier].requires_evidence
	passed := count(rollback_problems) == 0
	msg := fmt("rollback plan: %v", [rollback_problems])
	explain := {"facts": {"rollback": rollback}, "data": {"rollback": charter.rollback}}
}

# ---------------------------------------------------------------- approvals

# Separation of duties, per tier (tiers.yaml; both on unless a tier says otherwise): the requester
# cannot approve their own request, and one person counts for one role only.
requester_may_approve if object.get(tiers.tiers[tier], "requester_may_approve", false) == true

distinct_approvers if object.get(tiers.tiers[tier], "distinct_approvers", true) == true

# Both e-mails arrive lower-cased from the facts (Python), so they compare as they are.
# Undefined without `requested_by`: then approval.not_requester has no result and
# policy.complete denies. (No literal default and no `lower()` here: regopy 1.5 carries the
# quotes of a literal or of a built-in's string result into sprintf, which breaks the JSON.)
requester := input.request.requested_by

by_requester(a) if {
	not requester_may_approve
	is_string(a.email)
	a.email == requester
}

# Approvals that count: bound to this very request, and not the requester's own.
counted_approvals contains a if {
	some a in input.evidence.approvals
	a.request_bound == true
	not by_requester(a)
}

self_approvals contains a.signer if {
	some a in input.evidence.approvals
	a.request_bound == true
	by_requester(a)
}

# Human approvals the tier asks for, counted over distinct signers bound to this request.
approvers[role] := signers if {
	some required in tiers.tiers[tier].approvals
	role := required.role
	signers := {a.signer |
		some a in counted_approvals
		a.role == role
	}
}

domain_checks contains check("approval.not_requester", passed, "review", msg, "approval", explain) if {
	count(tiers.tiers[tier].approvals) > 0
	passed := count(self_approvals) == 0
	msg := fmt("approvals by the requester %s do not count: %v", [requester, sort(self_approvals)])
	explain := {"facts": {"requested_by": requester, "approvals": input.evidence.approvals}, "data": {"requester_may_approve": object.get(tiers.tiers[tier], "requester_may_approve", false)}}
}

# With distinct approvers, the people behind any set of required roles must be at least as many
# as the approvals those roles ask for (Hall's condition, checked over every role and pair of
# roles and over all of them together: exact for tiers of up to three roles).
required_roles := [a | some a in tiers.tiers[tier].approvals]

role_groups contains [a] if some a in required_roles

role_groups contains [a, b] if {
	some a in required_roles
	some b in required_roles
	a.role < b.role
}

role_groups contains required_roles if count(required_roles) > 2

short_groups contains sprintf("%v need %d distinct people, have %d", [roles, needed, have]) if {
	distinct_approvers
	some group in role_groups
	roles := [a.role | some a in group]
	needed := sum([a.count | some a in group])
	people := {p | some a in group; some p in approvers[a.role]}
	have := count(people)
	have < needed
	every a in group {
		count(approvers[a.role]) >= a.count
	}
}

domain_checks contains check("approval.distinct_people", passed, "review", msg, "approval", explain) if {
	distinct_approvers
	count(required_roles) > 1
	passed := count(short_groups) == 0
	msg := fmt("one person counts for one role only: %v", [sort(short_groups)])
	explain := {"facts": {"approvals": input.evidence.approvals}, "data": {"required": required_roles}}
}

domain_checks contains check(sprintf("approval.%s", [a.role]), have >= a.count, "review", msg, "approval", explain) if {
	some a in tiers.tiers[tier].approvals
	have := count(approvers[a.role])
	msg := fmt("the %s tier needs %d %s approval(s), has %d", [tier, a.count, a.role, have])
	explain := {"facts": {"approvals": input.evidence.approvals}, "data": {"tier": tier, "required": a}}
}

approvals_needed contains {"role": a.role, "count": a.count - have} if {
	some a in tiers.tiers[tier].approvals
	have := count(approvers[a.role])
	have < a.count
}

# ---------------------------------------------------------------- waivers

# Only gates and SLOs can be waived; evidence, request, residency, purpose, rollback and approval
# checks never are.
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

# ---------------------------------------------------------------- completeness

# The rule ids that must have been checked, derived from the facts' shape and the policy data
# alone. A check whose body is undefined would otherwise just vanish and let `approve` through;
# any expected id without a check is a deny of its own.
expected_checks contains id if some id in ["request.change_classes", "evidence.verified", "purpose.serving"]

expected_checks contains sprintf("evidence.present.%s", [k]) if some k in tiers.tiers[tier].requires_evidence

expected_checks contains "evidence.subject.name"

expected_checks contains "evidence.serving.matches_request" if serving_expected

expected_checks contains "evidence.eval.baseline" if "eval-result" in tiers.tiers[tier].requires_evidence

expected_checks contains sprintf("gate.%s.%s.%s", [layer, name, bound]) if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	some bound, _ in gate
}

expected_checks contains sprintf("slo.%s.%s", [name, bound]) if {
	some name, slo in gates.serving
	some bound, _ in slo
}

expected_checks contains sprintf("residency.region.%s", [r]) if some r in object.get(deployment, "regions", [])

expected_checks contains "residency.regions" if count(object.get(deployment, "regions", [])) == 0

expected_checks contains sprintf("residency.subprocessor.%s", [sp]) if some sp in object.get(deployment, "subprocessors", [])

expected_checks contains "purpose.training_data" if retrains

expected_checks contains sprintf("purpose.dataset.%s", [d.dataset]) if some d in training_data

expected_checks contains "rollback.plan" if "rollback-plan" in tiers.tiers[tier].requires_evidence

expected_checks contains sprintf("approval.%s", [a.role]) if some a in tiers.tiers[tier].approvals

expected_checks contains "approval.not_requester" if count(tiers.tiers[tier].approvals) > 0

expected_checks contains "approval.distinct_people" if {
	distinct_approvers
	count(required_roles) > 1
}

checked := {c.rule_id | some c in domain_checks}

missing_checks := {id | some id in expected_checks; not id in checked}

completeness := check("policy.complete", passed, "deny", msg, "policy", explain) if {
	passed := count(missing_checks) == 0
	msg := fmt("%d expected check(s) produced no result: %v", [count(missing_checks), sort(missing_checks)])
	explain := {"facts": {}, "data": {"expected": sort(expected_checks)}}
}

checks := domain_checks | {completeness}

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
		"message": fmt("waived: %s", [c.message]), "explain": c.explain,
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
		"message": "the policy produced no decision for these facts", "explain": {},
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
