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

# Training data comes from signed provenance, never from the requester's word: the verified
# training-run (signed by the trainer, about the candidate's weights) names every dataset by
# content digest, and each dataset's verified data card (signed by its data owner, bound to
# that digest in Python) says its purpose, lawful basis and record dates. Derivative datasets
# arrive as a chain of links (the dataset, its source, ...) flattened in Python: Rego cannot
# recurse. Every link is judged.
training := object.get(input.evidence, "training", {"run": null, "datasets": []})

training_run := object.get(training, "run", null)

training_datasets := object.get(training, "datasets", [])

# What the request says it trained on: only ever compared with the signed provenance.
training_data := object.get(input.request, "training_data", [])

flows := object.get(purposes, "derivative_flows", {})

declared_datasets := object.union(flows, purposes.datasets)

domain_checks contains check("purpose.training_data", passed, "deny", msg, "training-run", explain) if {
	retrains
	passed := training_run != null
	msg := "a retrain needs a verified training-run (signed by the trainer) naming its datasets by content digest"
	explain := {"facts": {"run": training_run, "datasets": [d.name | some d in training_datasets]}, "data": {"change_classes": input.request.change_classes}}
}

# The oldest record the signed card gives a link; null without a card.
card_oldest(link) := link.card.oldest_record if link.card != null

card_oldest(link) := null if link.card == null

signed_training_data := {[d.name, card_oldest(d.links[0])] | some d in training_datasets}

requested_training_data := {[d.dataset, d.oldest_record] | some d in training_data}

domain_checks contains check("purpose.training_data.matches_provenance", passed, "deny", msg, "training-run", explain) if {
	count(training_data) > 0
	passed := requested_training_data == signed_training_data
	msg := fmt("the request names training data %v; the signed provenance says %v", [sort(requested_training_data), sort(signed_training_data)])
	explain := {"facts": {"requested": training_data, "signed": sort(signed_training_data)}, "data": {}}
}

# [dataset name, problem] for every link of every dataset of the verified training-run.
training_links contains [d.name, link] if {
	some d in training_datasets
	some link in d.links
}

training_problems contains [d.name, msg] if {
	some d in training_datasets
	d.cut == true
	msg := "its derivative chain loops or is longer than slmgate follows"
}

training_problems contains [name, msg] if {
	some t in training_links
	name := t[0]
	link := t[1]
	link.card == null
	msg := sprintf("no verified data card about %v (sha256:%s…)", [link.named, substring(link.sha256, 0, 16)])
}

training_cards contains [name, link.named, link.card] if {
	some t in training_links
	name := t[0]
	link := t[1]
	link.card != null
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	named := t[1]
	card := t[2]
	card.dataset != named
	msg := sprintf("the data card names dataset %s, the provenance names it %v", [card.dataset, named])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	not declared_datasets[card.dataset]
	msg := sprintf("%s is not declared in purposes.yaml", [card.dataset])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	declared := declared_datasets[card.dataset]
	card.purpose != declared.purpose
	msg := sprintf("%s: the card's purpose %s, purposes.yaml declares %s", [card.dataset, card.purpose, declared.purpose])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	not "training" in object.get(purposes.purposes, [card.purpose, "uses"], [])
	msg := sprintf("%s: its purpose %s does not allow training", [card.dataset, card.purpose])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	basis := object.get(purposes.purposes, [card.purpose, "lawful_basis"], null)
	card.lawful_basis != basis
	msg := sprintf("%s: lawful basis %s, the purpose %s rests on %v", [card.dataset, card.lawful_basis, card.purpose, basis])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	not at_least(card.age_days, 0)
	msg := sprintf("%s: oldest record %s is in the future or unreadable", [card.dataset, card.oldest_record])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	not at_least(card.newest_age_days, 0)
	msg := sprintf("%s: newest record %s is in the future or unreadable", [card.dataset, card.newest_record])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	not at_most(card.newest_age_days, card.age_days)
	msg := sprintf("%s: newest record %s is older than the oldest %s", [card.dataset, card.newest_record, card.oldest_record])
}

training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	declared := declared_datasets[card.dataset]
	not at_most(card.age_days, declared.retention_days)
	msg := sprintf("%s: oldest record %v days old, retention %v days", [card.dataset, card.age_days, declared.retention_days])
}

# A derivative flow of purposes.yaml must be carded as a derivative of its declared source.
training_problems contains [name, msg] if {
	some t in training_cards
	name := t[0]
	card := t[2]
	flow := flows[card.dataset]
	not derivative_of(card, flow.source)
	msg := sprintf("%s: purposes.yaml declares it derived from %s; the card says %s from %s", [card.dataset, flow.source, card.category, card.origin])
}

derivative_of(card, source) if {
	card.category == "derivative"
	card.origin == source
}

domain_checks contains check(sprintf("purpose.dataset.%s", [d.name]), passed, "deny", msg, "data-card", explain) if {
	some d in training_datasets
	problems := sort([m | some p in training_problems; p[0] == d.name; m := p[1]])
	passed := count(problems) == 0
	msg := fmt("training dataset %s (sha256:%s…): %v", [d.name, substring(d.sha256, 0, 16), problems])
	explain := {"facts": {"dataset": d}, "data": {"declared": object.get(declared_datasets, d.name, null)}}
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

expected_checks contains "purpose.training_data.matches_provenance" if count(training_data) > 0

expected_checks contains sprintf("purpose.dataset.%s", [d.name]) if some d in training_datasets

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
