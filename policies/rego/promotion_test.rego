# Unit tests of promotion.rego's pure helpers; `slmgate policy test` runs every `test_` rule.
# Whole decisions are tested through the compiled entrypoint by the cases in ../tests/*.yaml
# (regopy 1.5 aborts on `with input as`, so these tests call functions, never override input).
package slmgate.promotion_test

import rego.v1

import data.slmgate.promotion

test_only_gates_and_slos_are_waivable if {
	promotion.waivable("gate.stress.accuracy.min")
	promotion.waivable("slo.latency_ms_p95.max")
	not promotion.waivable("evidence.verified")
	not promotion.waivable("residency.region.us")
	not promotion.waivable("approval.ml-lead")
}

test_a_failed_approval_check_asks_for_review_and_every_other_denies if {
	promotion.severity("approval.ml-lead") == "review"
	promotion.severity("approval.not_requester") == "review"
	promotion.severity("approval.distinct_people") == "review"
	promotion.severity("gate.stress.accuracy.min") == "deny"
	promotion.severity("evidence.verified") == "deny"
	promotion.severity("policy.complete") == "deny"
	promotion.severity("purpose.dataset.approval") == "deny"
}
