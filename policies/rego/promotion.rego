# The promotion decision. Default deny: `approve` only when every required check is positively
# satisfied, never merely because nothing fired. Facts arrive in `input` (built in Python, all time
# arithmetic done there); the bundle's YAML arrives in `data.slmgate`.
#
# Every check carries its rule id, message, evidence reference and `explain`: the facts and policy
# data it used (`slmgate promote --explain` prints them); a failed check is a finding of its
# family's severity.
#
# Written for the embedded engines. regopy 1.5's known limits: no `with` (it aborts the process),
# no comprehensions over function parameters (they are mis-bound), no two-variable `some k, v in`
# inside comprehensions. The same module runs unchanged on an OPA server.
#
# And written for speed, measured (bench/bench_decision.py, docs/benchmarks.md): the default
# engine, regorus, spends about 5 µs on every rule it evaluates and 2 µs on every function call,
# against well under 1 µs for a local variable, on every decision. So each check is an object
# literal built in its own rule body from local variables; a value gets a rule of its own only
# when several rules share it; and every gate or SLO bound has one definition, not a function
# whose definitions are tried in turn.
#
# A rule head holds only variables its body binds (or constants): regorus (as pinned) drops a
# whole partial set when a head is undefined for one element, where OPA drops that element.
package slmgate.promotion

import rego.v1

import data.slmgate.charter
import data.slmgate.gates
import data.slmgate.purposes
import data.slmgate.subprocessors
import data.slmgate.tiers

# ---------------------------------------------------------------- tier

unknown_change_classes contains c if {
	classes := tiers.change_classes
	some c in input.request.change_classes
	not classes[c]
}

# The heaviest tier among the change classes; undefined when a class is unknown or none given.
tier := name if {
	count(unknown_change_classes) == 0
	ranks := [tiers.tiers[tiers.change_classes[c].tier].rank | some c in input.request.change_classes]
	count(ranks) > 0
	top := max(ranks)
	some name, t in tiers.tiers
	t.rank == top
}

# What the tier asks for (undefined with the tier).
required_evidence := tiers.tiers[tier].requires_evidence

required_approvals := tiers.tiers[tier].approvals

retrains if {
	classes := tiers.change_classes
	some c in input.request.change_classes
	classes[c].retrains == true
}

deployment := object.get(input.request, "deployment", {})

# ---------------------------------------------------------------- checks

# A check is `{"rule_id", "passed", "message", "evidence_ref", "explain"}`. A failed one is a
# finding of the severity its family has (`severity` below).
#
# A message is a format and its arguments, `{"format": ..., "args": [...]}`, rendered in Python
# (engine/policy/_messages.py) the same way for every engine, as OPA's sprintf would: regopy 1.5
# prints floats with 17 digits, does not know %q and carries quotes into some strings, so no
# message is formatted in Rego. Rule ids, which are compared, are still built with sprintf from
# strings alone.
#
# `[is_number(x), x <= limit] == [true, true]` is "x is a number and at most limit": a bare
# `null <= 1` is true in Rego, whose ordering puts null below numbers (and a string above them),
# so comparing unchecked facts would fail open.

domain_checks contains {"rule_id": "request.change_classes", "passed": passed, "message": msg, "evidence_ref": "request", "explain": explain} if {
	passed := count(unknown_change_classes) == 0
	msg := {"format": "change classes %v (unknown: %v)", "args": [input.request.change_classes, sort(unknown_change_classes)]}
	explain := {"facts": {"change_classes": input.request.change_classes}, "data": {"known": sort(object.keys(tiers.change_classes))}}
}

domain_checks contains {"rule_id": "evidence.verified", "passed": passed, "message": msg, "evidence_ref": "evidence", "explain": explain} if {
	rejected := input.evidence.rejected
	passed := count(rejected) == 0
	refs := [ref | some r in rejected; ref := {"format": "%s (%s: %s)", "args": [r.ref, r.step, r.reason]}]
	msg := {"format": "%d envelope(s) refused %v", "args": [count(refs), refs]}
	explain := {"facts": {"rejected": rejected}, "data": {}}
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": kind, "explain": explain} if {
	required := required_evidence
	present := input.evidence.present
	some kind in required
	passed := kind in present
	msg := {"format": "the %s tier requires verified %s evidence", "args": [tier, kind]}
	explain := {"facts": {"present": present}, "data": {"tier": tier, "requires_evidence": required}}
	id := sprintf("evidence.present.%s", [kind])
}

domain_checks contains {"rule_id": "evidence.eval.baseline", "passed": passed, "message": msg, "evidence_ref": "eval-result", "explain": explain} if {
	"eval-result" in required_evidence
	matches := object.get(input.evidence, ["eval", "baseline_matches"], null)
	passed := matches == true
	msg := "the eval must compare the candidate with the baseline named in the request"
	explain := {"facts": {"baseline_matches": matches, "baseline": object.get(input.request, "baseline", null)}, "data": {}}
}

# The model's identity is the subject name of the signed weights manifest; every verified
# statement about the candidate must give its weights that one name, and the request the same.
domain_checks contains {"rule_id": "evidence.subject.name", "passed": passed, "message": msg, "evidence_ref": "weights-manifest", "explain": explain} if {
	names := object.get(input.evidence, ["subjects", "names"], [])
	signed := object.get(input.evidence, ["subjects", "model"], null)
	requested := input.request.model.name
	passed := [count(names), signed] == [1, requested]
	msg := {"format": "the request promotes %v; the signed weights manifest names it %v; the verified statements name it %v", "args": [requested, signed, names]}
	explain := {"facts": {"requested": requested, "signed": signed, "names": names}, "data": {}}
}

# A serving configuration is deployed as measured: the request states it (deployment.serving)
# and the verified serving-config must have measured exactly that, field by field.
serving_expected if "serving-config" in required_evidence

serving_expected if {
	some stated in [object.get(deployment, "serving", {}), object.get(input.evidence, "serving", {}), object.get(gates, "serving", {})]
	count(stated) > 0
}

domain_checks contains {"rule_id": "evidence.serving.matches_request", "passed": passed, "message": msg, "evidence_ref": "serving-config", "explain": explain} if {
	serving_expected
	fields := ["device", "dtype", "batch_size", "quantization", "runtime_version"]
	requested_serving := object.get(deployment, "serving", {})
	measured_serving := object.get(input.evidence, "serving", {})
	unstated := {"device": null, "dtype": null, "batch_size": null, "quantization": null, "runtime_version": null}
	requested := object.union(unstated, object.filter(requested_serving, fields))
	measured := object.union(unstated, object.filter(measured_serving, fields))
	problems := array.concat(array.concat(
		[x | x := "the request does not state the serving configuration it deploys (deployment.serving)"; count(requested_serving) == 0],
		[x | x := "no verified serving-config measured it"; count(measured_serving) == 0]),
		[{"format": "%s: requested %v, measured %v", "args": [f, requested[f], measured[f]]} |
			count(requested_serving) > 0
			count(measured_serving) > 0
			some f in fields
			requested[f] != measured[f]
		],
	)
	passed := count(problems) == 0
	msg := {"format": "serving configuration: %v", "args": [problems]}
	explain := {"facts": {"requested": requested_serving, "measured": measured}, "data": {"fields": fields}}
}

# Eval gates: one check per (layer, metric, bound) in gates.yaml, `gate` its dotted path there;
# a metric no verified eval-result reported is null and fails its every bound. A drop needs a
# baseline: a metric reported without one fails its max_drop bound (fail closed).
domain_checks contains {"rule_id": id, "passed": false, "message": msg, "evidence_ref": "eval-result", "explain": explain} if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	object.get(input.evidence, ["eval", "layers", layer, name], null) == null
	some bound, limit in gate
	msg := {"format": "%s %s was not reported by a verified eval-result", "args": [layer, name]}
	explain := {"facts": {"metric": null}, "data": {"gate": sprintf("gates.eval.%s.%s.%s", [layer, name, bound]), "limit": limit}}
	id := sprintf("gate.%s.%s.%s", [layer, name, bound])
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "eval-result", "explain": explain} if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	limit := gate.min
	m := object.get(input.evidence, ["eval", "layers", layer, name], null)
	m != null
	passed := [is_number(m.candidate), m.candidate >= limit] == [true, true]
	msg := {"format": "%s %s %v, minimum %v", "args": [layer, name, m.candidate, limit]}
	explain := {"facts": {"metric": m}, "data": {"gate": sprintf("gates.eval.%s.%s.min", [layer, name]), "limit": limit}}
	id := sprintf("gate.%s.%s.min", [layer, name])
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "eval-result", "explain": explain} if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	limit := gate.max
	m := object.get(input.evidence, ["eval", "layers", layer, name], null)
	m != null
	passed := [is_number(m.candidate), m.candidate <= limit] == [true, true]
	msg := {"format": "%s %s %v, maximum %v", "args": [layer, name, m.candidate, limit]}
	explain := {"facts": {"metric": m}, "data": {"gate": sprintf("gates.eval.%s.%s.max", [layer, name]), "limit": limit}}
	id := sprintf("gate.%s.%s.max", [layer, name])
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "eval-result", "explain": explain} if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	limit := gate.max_drop
	m := object.get(input.evidence, ["eval", "layers", layer, name], null)
	m != null
	passed := [is_number(m.drop), m.drop <= limit] == [true, true]
	msg := {"format": "%s %s moved %v -> %v (drop %v, at most %v)", "args": [layer, name, m.baseline, m.candidate, m.drop, limit]}
	explain := {"facts": {"metric": m}, "data": {"gate": sprintf("gates.eval.%s.%s.max_drop", [layer, name]), "limit": limit}}
	id := sprintf("gate.%s.%s.max_drop", [layer, name])
}

# Serving SLOs, measured on the device named in the serving-config evidence.
domain_checks contains {"rule_id": id, "passed": false, "message": msg, "evidence_ref": "serving-config", "explain": explain} if {
	some name, slo in gates.serving
	object.get(input.evidence, ["serving", name], null) == null
	some bound, limit in slo
	msg := {"format": "%s was not reported by a verified serving-config", "args": [name]}
	explain := {"facts": {name: null, "device": object.get(input.evidence, ["serving", "device"], null)}, "data": {"slo": sprintf("gates.serving.%s.%s", [name, bound]), "limit": limit}}
	id := sprintf("slo.%s.%s", [name, bound])
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "serving-config", "explain": explain} if {
	some name, slo in gates.serving
	limit := slo.max
	v := object.get(input.evidence, ["serving", name], null)
	v != null
	passed := [is_number(v), v <= limit] == [true, true]
	msg := {"format": "%s %v, maximum %v", "args": [name, v, limit]}
	explain := {"facts": {name: v, "device": object.get(input.evidence, ["serving", "device"], null)}, "data": {"slo": sprintf("gates.serving.%s.max", [name]), "limit": limit}}
	id := sprintf("slo.%s.max", [name])
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "serving-config", "explain": explain} if {
	some name, slo in gates.serving
	limit := slo.min
	v := object.get(input.evidence, ["serving", name], null)
	v != null
	passed := [is_number(v), v >= limit] == [true, true]
	msg := {"format": "%s %v, minimum %v", "args": [name, v, limit]}
	explain := {"facts": {name: v, "device": object.get(input.evidence, ["serving", "device"], null)}, "data": {"slo": sprintf("gates.serving.%s.min", [name]), "limit": limit}}
	id := sprintf("slo.%s.min", [name])
}

# ---------------------------------------------------------------- residency and purpose

# The data classes the served purpose involves (none for an undeclared purpose), and where the
# charter lets each of them be processed.
classes_involved := object.get(purposes.purposes, [object.get(deployment, "purpose", ""), "data_classes"], [])

classes_residency := {c: r |
	data_classes := charter.data_classes
	some c in classes_involved
	r := data_classes[c].residency
}

domain_checks contains {"rule_id": "purpose.serving", "passed": passed, "message": msg, "evidence_ref": "request", "explain": explain} if {
	purpose := object.get(deployment, "purpose", "")
	declared := sort(object.keys(purposes.purposes))
	passed := purposes.purposes[purpose] != null
	msg := {"format": "the deployment serves purpose %q; declared purposes: %v", "args": [purpose, declared]}
	explain := {"facts": {"deployment": deployment}, "data": {"purposes": declared}}
}

domain_checks contains {"rule_id": "purpose.serving", "passed": false, "message": msg, "evidence_ref": "request", "explain": explain} if {
	purpose := object.get(deployment, "purpose", "")
	not purposes.purposes[purpose]
	msg := {"format": "the deployment serves purpose %q, which purposes.yaml does not declare", "args": [purpose]}
	explain := {"facts": {"deployment": deployment}, "data": {"purposes": sort(object.keys(purposes.purposes))}}
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "request", "explain": explain} if {
	classes := classes_involved
	residency := classes_residency
	some region in object.get(deployment, "regions", [])
	outside := [c | some c in classes; not region in residency[c]]
	passed := count(outside) == 0
	msg := {"format": "serving in %s; data classes whose residency excludes it: %v", "args": [region, outside]}
	explain := {"facts": {"region": region, "data_classes": classes}, "data": {"residency": residency}}
	id := sprintf("residency.region.%s", [region])
}

domain_checks contains {"rule_id": "residency.regions", "passed": false, "message": msg, "evidence_ref": "request", "explain": explain} if {
	count(object.get(deployment, "regions", [])) == 0
	msg := "the request names no serving region; residency cannot be checked"
	explain := {"facts": {"deployment": deployment}, "data": {}}
}

domain_checks contains {"rule_id": id, "passed": false, "message": msg, "evidence_ref": "request", "explain": explain} if {
	some name in object.get(deployment, "subprocessors", [])
	not subprocessors.subprocessors[name]
	msg := {"format": "subprocessor %s on the serving path: %v", "args": [name, ["not declared in subprocessors.yaml"]]}
	explain := {"facts": {"subprocessor": name, "data_classes": classes_involved}, "data": {"subprocessor": object.get(subprocessors.subprocessors, name, null)}}
	id := sprintf("residency.subprocessor.%s", [name])
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "request", "explain": explain} if {
	classes := classes_involved
	residency := classes_residency
	declared := subprocessors.subprocessors
	some name in object.get(deployment, "subprocessors", [])
	sp := declared[name]
	untouched := [c | some c in classes; not c in sp.data_classes]
	unsafe := [r | some r in sp.regions; some c in classes; not r in residency[c]; not sp.transfer_safeguard]
	problems := array.concat(
		[{"format": "not declared for data classes %v", "args": [untouched]} | count(untouched) > 0],
		[{"format": "processes in %v outside residency without a transfer safeguard", "args": [unsafe]} | count(unsafe) > 0],
	)
	passed := count(problems) == 0
	msg := {"format": "subprocessor %s on the serving path: %v", "args": [name, problems]}
	explain := {"facts": {"subprocessor": name, "data_classes": classes}, "data": {"subprocessor": sp}}
	id := sprintf("residency.subprocessor.%s", [name])
}

# Training data comes from signed provenance, never from the requester's word: the verified
# training-run (signed by the trainer, about the candidate's weights) names every dataset by
# content digest, and each dataset's verified data card (signed by its data owner, bound to
# that digest in Python) says its purpose, lawful basis and record dates. Derivative datasets
# arrive as a chain of links (the dataset, its source, ...) flattened in Python: Rego cannot
# recurse. Every link is judged.
training_datasets := object.get(input.evidence, ["training", "datasets"], [])

# The datasets and derivative flows purposes.yaml declares, by name.
declared_datasets := object.union(object.get(purposes, "derivative_flows", {}), purposes.datasets)

domain_checks contains {"rule_id": "purpose.training_data", "passed": passed, "message": msg, "evidence_ref": "training-run", "explain": explain} if {
	retrains
	run := object.get(input.evidence, ["training", "run"], null)
	passed := run != null
	msg := "a retrain needs a verified training-run (signed by the trainer) naming its datasets by content digest"
	explain := {"facts": {"run": run, "datasets": [d.name | some d in training_datasets]}, "data": {"change_classes": input.request.change_classes}}
}

# What the request says it trained on is only ever compared with the signed provenance: each
# dataset with the oldest record its first link's signed card gives (null without a card).
domain_checks contains {"rule_id": "purpose.training_data.matches_provenance", "passed": passed, "message": msg, "evidence_ref": "training-run", "explain": explain} if {
	training_data := object.get(input.request, "training_data", [])
	count(training_data) > 0
	requested := {[d.dataset, d.oldest_record] | some d in training_data}
	signed_set := {[name, oldest] |
		some d in training_datasets
		name := d.name
		card := d.links[0].card
		card != null
		oldest := card.oldest_record
	} | {[name, null] |
		some d in training_datasets
		name := d.name
		d.links[0].card == null
	}
	passed := requested == signed_set
	signed := sort(signed_set)
	msg := {"format": "the request names training data %v; the signed provenance says %v", "args": [sort(requested), signed]}
	explain := {"facts": {"requested": training_data, "signed": signed}, "data": {}}
}

# [dataset name, problem] for every link of every dataset of the verified training-run.
training_problems contains [name, msg] if {
	some d in training_datasets
	name := d.name
	d.cut == true
	msg := "its derivative chain loops or is longer than slmgate follows"
}

training_problems contains [name, msg] if {
	some d in training_datasets
	name := d.name
	some link in d.links
	link.card == null
	msg := sprintf("no verified data card about %v (sha256:%s…)", [link.named, substring(link.sha256, 0, 16)])
}

# Every problem one signed card of a link can have, against purposes.yaml. (Each test is its own
# comprehension: a field a card lacks leaves out that test's message, not the card's others.)
training_problems contains [name, msg] if {
	some d in training_datasets
	name := d.name
	some link in d.links
	card := link.card
	card != null
	problems := [
		[sprintf("the data card names dataset %s, the provenance names it %v", [card.dataset, link.named]) | card.dataset != link.named],
		[sprintf("%s is not declared in purposes.yaml", [card.dataset]) | not declared_datasets[card.dataset]],
		[sprintf("%s: the card's purpose %s, purposes.yaml declares %s", [card.dataset, card.purpose, declared.purpose]) |
			declared := declared_datasets[card.dataset]
			card.purpose != declared.purpose
		],
		[sprintf("%s: its purpose %s does not allow training", [card.dataset, card.purpose]) |
			not "training" in object.get(purposes.purposes, [card.purpose, "uses"], [])
		],
		[sprintf("%s: lawful basis %s, the purpose %s rests on %v", [card.dataset, card.lawful_basis, card.purpose, basis]) |
			basis := object.get(purposes.purposes, [card.purpose, "lawful_basis"], null)
			card.lawful_basis != basis
		],
		[sprintf("%s: oldest record %s is in the future or unreadable", [card.dataset, card.oldest_record]) |
			not [is_number(card.age_days), card.age_days >= 0] == [true, true]
		],
		[sprintf("%s: newest record %s is in the future or unreadable", [card.dataset, card.newest_record]) |
			not [is_number(card.newest_age_days), card.newest_age_days >= 0] == [true, true]
		],
		[sprintf("%s: newest record %s is older than the oldest %s", [card.dataset, card.newest_record, card.oldest_record]) |
			not [is_number(card.newest_age_days), card.newest_age_days <= card.age_days] == [true, true]
		],
		[sprintf("%s: oldest record %v days old, retention %v days", [card.dataset, card.age_days, declared.retention_days]) |
			declared := declared_datasets[card.dataset]
			not [is_number(card.age_days), card.age_days <= declared.retention_days] == [true, true]
		],
		# A derivative flow of purposes.yaml must be carded as a derivative of its declared source.
		[sprintf("%s: purposes.yaml declares it derived from %s; the card says %s from %s", [card.dataset, flow.source, card.category, card.origin]) |
			flow := purposes.derivative_flows[card.dataset]
			not [card.category, card.origin] == ["derivative", flow.source]
		],
	]
	some found in problems
	some msg in found
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "data-card", "explain": explain} if {
	some d in training_datasets
	problems := sort([m | some p in training_problems; p[0] == d.name; m := p[1]])
	passed := count(problems) == 0
	msg := {"format": "training dataset %s (sha256:%s…): %v", "args": [d.name, substring(d.sha256, 0, 16), problems]}
	explain := {"facts": {"dataset": d}, "data": {"declared": object.get(declared_datasets, d.name, null)}}
	id := sprintf("purpose.dataset.%s", [d.name])
}

# ---------------------------------------------------------------- rollback

domain_checks contains {"rule_id": "rollback.plan", "passed": passed, "message": msg, "evidence_ref": "rollback-plan", "explain": explain} if {
	"rollback-plan" in required_evidence
	rollback := object.get(input.evidence, "rollback", null)
	limits := charter.rollback
	problems := array.concat(array.concat(array.concat(
		[x | x := "no verified rollback-plan"; rollback == null],
		[x | x := "no named owner"; rollback != null; object.get(rollback, "owner", "") == ""]),
		[{"format": "last drill %v days ago, at most %v", "args": [rollback.drill_age_days, limits.drill_max_age_days]} |
			rollback != null
			not [is_number(rollback.drill_age_days), rollback.drill_age_days <= limits.drill_max_age_days] == [true, true]
		]),
		[{"format": "rollback takes %v minutes, at most %v", "args": [rollback.max_rollback_minutes, limits.max_rollback_minutes]} |
			rollback != null
			not [is_number(rollback.max_rollback_minutes), rollback.max_rollback_minutes <= limits.max_rollback_minutes] == [true, true]
		],
	)
	passed := count(problems) == 0
	msg := {"format": "rollback plan: %v", "args": [problems]}
	explain := {"facts": {"rollback": rollback}, "data": {"rollback": limits}}
}

# ---------------------------------------------------------------- approvals

# Separation of duties, per tier (tiers.yaml; both on unless a tier says otherwise): the requester
# cannot approve their own request, and one person counts for one role only.
#
# Both e-mails arrive lower-cased from the facts (Python), so they compare as they are. Without
# `requested_by` the rules that read it are undefined: then approval.not_requester has no result
# and policy.complete denies. (No literal default and no `lower()` here: regopy 1.5 carries the
# quotes of a literal or of a built-in's string result into sprintf, which breaks the JSON.)

# Approvals bound to this very request that the requester signed, when the tier does not let
# the requester approve: they do not count.
self_approvals := [a |
	object.get(tiers.tiers[tier], "requester_may_approve", false) != true
	some a in input.evidence.approvals
	a.request_bound == true
	is_string(a.email)
	a.email == input.request.requested_by
]

# Human approvals the tier asks for, counted over distinct signers bound to this request.
approvers[role] := signers if {
	some required in required_approvals
	role := required.role
	signers := {a.signer |
		some a in input.evidence.approvals
		a.request_bound == true
		a.role == role
		not a in self_approvals
	}
}

domain_checks contains {"rule_id": "approval.not_requester", "passed": passed, "message": msg, "evidence_ref": "approval", "explain": explain} if {
	count(required_approvals) > 0
	requester := input.request.requested_by
	signers := {a.signer | some a in self_approvals}
	passed := count(signers) == 0
	msg := {"format": "approvals by the requester %s do not count: %v", "args": [requester, sort(signers)]}
	explain := {"facts": {"requested_by": requester, "approvals": input.evidence.approvals}, "data": {"requester_may_approve": object.get(tiers.tiers[tier], "requester_may_approve", false)}}
}

# With distinct approvers, the people behind any set of required roles must be at least as many
# as the approvals those roles ask for (Hall's condition, checked over every role and pair of
# roles and over all of them together: exact for tiers of up to three roles).
distinct_approvers if object.get(tiers.tiers[tier], "distinct_approvers", true) == true

domain_checks contains {"rule_id": "approval.distinct_people", "passed": passed, "message": msg, "evidence_ref": "approval", "explain": explain} if {
	distinct_approvers
	required := required_approvals
	count(required) > 1
	groups := {[a] | some a in required} | {[a, b] | some a in required; some b in required; a.role < b.role} | {g | g := required; count(required) > 2}
	short := {sprintf("%v need %d distinct people, have %d", [roles, needed, have]) |
		some group in groups
		roles := [a.role | some a in group]
		needed := sum([a.count | some a in group])
		have := count({p | some a in group; some p in approvers[a.role]})
		have < needed
		every a in group {
			count(approvers[a.role]) >= a.count
		}
	}
	passed := count(short) == 0
	msg := {"format": "one person counts for one role only: %v", "args": [sort(short)]}
	explain := {"facts": {"approvals": input.evidence.approvals}, "data": {"required": required}}
}

domain_checks contains {"rule_id": id, "passed": passed, "message": msg, "evidence_ref": "approval", "explain": explain} if {
	some a in required_approvals
	have := count(approvers[a.role])
	msg := {"format": "the %s tier needs %d %s approval(s), has %d", "args": [tier, a.count, a.role, have]}
	explain := {"facts": {"approvals": input.evidence.approvals}, "data": {"tier": tier, "required": a}}
	id := sprintf("approval.%s", [a.role])
	passed := have >= a.count
}

# ---------------------------------------------------------------- completeness

# The rule ids that must have been checked, derived from the facts' shape and the policy data
# alone. A check whose body is undefined would otherwise just vanish and let `approve` through;
# any expected id without a check is a deny of its own.
expected_checks contains id if some id in ["request.change_classes", "evidence.verified", "purpose.serving", "evidence.subject.name"]

expected_checks contains "evidence.serving.matches_request" if serving_expected

expected_checks contains "evidence.eval.baseline" if "eval-result" in required_evidence

expected_checks contains "residency.regions" if count(object.get(deployment, "regions", [])) == 0

expected_checks contains "purpose.training_data" if retrains

expected_checks contains "purpose.training_data.matches_provenance" if count(object.get(input.request, "training_data", [])) > 0

expected_checks contains "rollback.plan" if "rollback-plan" in required_evidence

expected_checks contains "approval.not_requester" if count(required_approvals) > 0

expected_checks contains "approval.distinct_people" if {
	distinct_approvers
	count(required_approvals) > 1
}

expected_checks contains id if {
	some k in required_evidence
	id := sprintf("evidence.present.%s", [k])
}

expected_checks contains id if {
	some layer, metrics in gates.eval
	some name, gate in metrics
	some bound, _ in gate
	id := sprintf("gate.%s.%s.%s", [layer, name, bound])
}

expected_checks contains id if {
	some name, slo in gates.serving
	some bound, _ in slo
	id := sprintf("slo.%s.%s", [name, bound])
}

expected_checks contains id if {
	some r in object.get(deployment, "regions", [])
	id := sprintf("residency.region.%s", [r])
}

expected_checks contains id if {
	some sp in object.get(deployment, "subprocessors", [])
	id := sprintf("residency.subprocessor.%s", [sp])
}

expected_checks contains id if {
	some d in training_datasets
	id := sprintf("purpose.dataset.%s", [d.name])
}

expected_checks contains id if {
	some a in required_approvals
	id := sprintf("approval.%s", [a.role])
}

completeness := {"rule_id": "policy.complete", "passed": passed, "message": msg, "evidence_ref": "policy", "explain": explain} if {
	checked := {c.rule_id | some c in domain_checks}
	missing := {id | some id in expected_checks; not id in checked}
	passed := count(missing) == 0
	msg := {"format": "%d expected check(s) produced no result: %v", "args": [count(missing), sort(missing)]}
	explain := {"facts": {}, "data": {"expected": sort(expected_checks)}}
}

checks := domain_checks | {completeness}

# Every check not positively passed (a `passed` that is not `true` is not a pass).
unpassed := [c | some c in checks; c.passed != true]

# ---------------------------------------------------------------- waivers

# Only gates and SLOs can be waived; evidence, request, residency, purpose, rollback and approval
# checks never are.
waivable(rule_id) if startswith(rule_id, "gate.")

waivable(rule_id) if startswith(rule_id, "slo.")

waived contains id if {
	some c in unpassed
	id := c.rule_id
	waivable(c.rule_id)
	some w in input.waivers.active
	w.rule_id == c.rule_id
}

# ---------------------------------------------------------------- findings and outcome

# A failed approval check asks for people, not for a fix: it sends the promotion to review.
# Every other failed check denies it.
severity(rule_id) := "review" if {
	startswith(rule_id, "approval.")
} else := "deny"

findings contains f if {
	some c in unpassed
	not c.rule_id in waived
	f := {
		"rule_id": c.rule_id, "severity": severity(c.rule_id), "evidence_ref": c.evidence_ref,
		"message": c.message, "explain": c.explain,
	}
}

findings contains f if {
	some c in unpassed
	c.rule_id in waived
	f := {
		"rule_id": c.rule_id, "severity": "info", "evidence_ref": c.evidence_ref,
		"message": {"format": "waived: %s", "args": [c.message]}, "explain": c.explain,
	}
}

# `approve` needs a tier and every check passed or waived.
default outcome := "deny"

outcome := "deny" if {
	some f in findings
	f.severity == "deny"
} else := "review" if {
	some f in findings
	f.severity == "review"
} else := "approve" if {
	tier
	count(checks) > 0
	every c in unpassed {
		c.rule_id in waived
	}
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

waivers_applied contains w if {
	some w in input.waivers.active
	w.rule_id in waived
}

approvals_needed contains {"role": role, "count": needed} if {
	some a in required_approvals
	role := a.role
	needed := a.count - count(approvers[role])
	needed > 0
}

default decision_tier := "unknown"

decision_tier := tier

decision := {
	"outcome": outcome,
	"tier": decision_tier,
	"findings": findings,
	"checks": checks,
	"approvals_needed": approvals_needed,
	"waivers_applied": waivers_applied,
	"waivers_expired": input.waivers.expired,
}
