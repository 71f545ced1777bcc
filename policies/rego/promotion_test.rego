# Unit tests of promotion.rego's pure helpers; `slmgate policy test` runs every `test_` rule.
# Whole decisions are tested through the compiled entrypoint by the cases in ../tests/*.yaml
# (regopy 1.5 aborts on `with input as`, so these tests call functions, never override input).
package slmgate.promotion_test

import rego.v1

import data.slmgate.promotion

test_at_most_compares_numbers if {
	promotion.at_most(0.02, 0.02)
	not promotion.at_most(0.03, 0.02)
}

test_at_most_refuses_null_and_strings if {
	not promotion.at_most(null, 0.02)
	not promotion.at_most("0.01", 0.02)
}

test_at_least_refuses_null if {
	promotion.at_least(0.9, 0.9)
	not promotion.at_least(null, 0.0)
}

test_only_gates_and_slos_are_waivable if {
	promotion.waivable("gate.stress.accuracy.min")
	promotion.waivable("slo.latency_ms_p95.max")
	not promotion.waivable("evidence.verified")
	not promotion.waivable("residency.region.us")
	not promotion.waivable("approval.ml-lead")
}

test_region_allowed_follows_the_charter if {
	promotion.region_allowed("eu", "contact_details")
	not promotion.region_allowed("us", "contact_details")
	promotion.region_allowed("us", "routing_labels")
}

test_min_gate_with_unreported_metric_fails if {
	# the names arrive through variables, as they do from gates.yaml (regopy 1.5 formats a string
	# literal argument with its quotes when it reaches sprintf)
	some layer in ["stress"]
	some name in ["accuracy"]
	some bound in ["min"]
	c := promotion.gate_check(layer, name, bound, 0.8, null)
	c.passed == false
	c.rule_id == "gate.stress.accuracy.min"
}

test_max_drop_gate_needs_a_number if {
	c := promotion.gate_check("stress", "accuracy", "max_drop", 0.03, {"candidate": 0.9, "baseline": null, "drop": null})
	c.passed == false
}

test_max_drop_gate_passes_an_improvement if {
	c := promotion.gate_check("stress", "accuracy", "max_drop", 0.03, {"candidate": 0.9, "baseline": 0.85, "drop": -0.05})
	c.passed == true
}
