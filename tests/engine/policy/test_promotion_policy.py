"""promotion.rego against policy data the shipped bundle does not hold (a minimum SLO, a
subprocessor outside residency), and its completeness net: every domain check deleted in turn
must be caught by ``policy.complete``.

The data variants are set on the loaded bundle, past the YAML validation: they test the Rego's
own decision, which must hold even for data the validator would refuse.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

import pytest
import yaml

from slmgate.engine import load_bundle
from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._decision import engine_neutral
from slmgate.engine.policy._engines import DEFAULT_ENGINE, EMBEDDED_ENGINES, embedded_engine
from slmgate.engine.policy._evaluate import DecisionEngine
from slmgate.engine.policy._policytest import _apply
from slmgate.engine.policy._regorus import RegorusPolicy
from tests.conftest import World

PROBE = """package slmgate.probe

import rego.v1

result := {"unpassed": [c.rule_id | some c in data.slmgate.promotion.unpassed]}
"""


@pytest.fixture(scope="module")
def bundle(session_world: World) -> PolicyBundle:
    return load_bundle(session_world.policies)


@pytest.fixture(scope="module")
def base_facts(session_world: World) -> dict[str, Any]:
    doc = yaml.safe_load((session_world.policies / "tests" / "promotion.yaml").read_text())
    return doc["base"]  # type: ignore[no-any-return]


def _facts(base: dict[str, Any], **evidence: Any) -> dict[str, Any]:
    facts = copy.deepcopy(base)
    facts["evidence"].update(evidence)
    return facts


_COMPILED: dict[str, DecisionEngine] = {}


def _decide(bundle: PolicyBundle, facts: dict[str, Any], data: dict[str, Any] | None = None,
            rego: dict[str, str] | None = None, engine: str = DEFAULT_ENGINE) -> dict[str, Any]:
    """The decision for ``facts`` under the bundle with ``data`` and ``rego`` replaced, each
    variant compiled once (compiling is most of the cost), by the default engine unless
    ``engine`` names another (test_engine_parity.py holds every engine to the same decisions)."""
    key = repr((bundle.digest, data, rego, engine))
    if key not in _COMPILED:
        variant = replace(bundle, data=data if data is not None else bundle.data,
                          rego_modules=rego if rego is not None else bundle.rego_modules)
        _COMPILED[key] = embedded_engine(variant, engine)
    return engine_neutral(_COMPILED[key].evaluate(facts))  # messages rendered, as promote reads them


def _blocking(decision: dict[str, Any]) -> set[str]:
    return {f["rule_id"] for f in decision["findings"] if f["severity"] in ("deny", "review")}


# ------------------------------------------------------------------ every check in its own words


# Each family's message and the keys of its explain: regopy 1.5 binds a rule's unbound `msg` or
# `explain` to another rule's, so a deleted line would otherwise pass with borrowed words.
_OWN_WORDS = {
    "request.change_classes": (r"change classes \[", {"change_classes"}, {"known"}),
    "evidence.verified": (r"\d+ envelope\(s\) refused", {"rejected"}, set()),
    "evidence.present": (r"the \w+ tier requires verified [\w-]+ evidence", {"present"},
                         {"tier", "requires_evidence"}),
    "evidence.eval.baseline": (r"the eval must compare", {"baseline_matches", "baseline"}, set()),
    "evidence.subject.name": (r"the request promotes", {"requested", "signed", "names"}, set()),
    "evidence.serving.matches_request": (r"serving configuration: \[", {"requested", "measured"},
                                         {"fields"}),
    "gate": (r"\w+ \w+ (moved|[\d.]+, (minimum|maximum))", {"metric"}, {"gate", "limit"}),
    "slo": (r"latency_ms_p95 [\d.]+, maximum", {"latency_ms_p95", "device"}, {"slo", "limit"}),
    "purpose.serving": (r"the deployment serves purpose", {"deployment"}, {"purposes"}),
    "residency.region": (r"serving in \w+; data classes", {"region", "data_classes"}, {"residency"}),
    "residency.regions": (r"the request names no serving region", {"deployment"}, set()),
    "residency.subprocessor": (r"subprocessor [\w-]+ on the serving path", {"subprocessor", "data_classes"},
                               {"subprocessor"}),
    "purpose.training_data": (r"a retrain needs a verified training-run", {"run", "datasets"},
                              {"change_classes"}),
    "purpose.training_data.matches_provenance": (r"the request names training data",
                                                 {"requested", "signed"}, set()),
    "purpose.dataset": (r"training dataset \w+ \(sha256:\w+…\): \[", {"dataset"}, {"declared"}),
    "rollback.plan": (r"rollback plan: \[", {"rollback"}, {"rollback"}),
    "approval.not_requester": (r"approvals by the requester", {"requested_by", "approvals"},
                               {"requester_may_approve"}),
    "approval.distinct_people": (r"one person counts for one role only", {"approvals"}, {"required"}),
    "approval": (r"the \w+ tier needs \d+ [\w-]+ approval", {"approvals"}, {"tier", "required"}),
    "policy.complete": (r"\d+ expected check\(s\) produced no result", set(), {"expected"}),
}


def _family(rule_id: str) -> str:
    return next(f for f in sorted(_OWN_WORDS, key=len, reverse=True)
                if rule_id == f or rule_id.startswith(f + "."))


def _failing(base_facts: dict[str, Any]) -> dict[str, Any]:
    """Facts that fail the checks the scenarios leave passing: no evidence present, one envelope
    refused, undeclared training data, a region outside residency."""
    failing = copy.deepcopy(base_facts)
    failing["evidence"]["present"] = []
    failing["evidence"]["rejected"] = [{"ref": "e", "step": "signature", "reason": "x"}]
    failing["request"]["training_data"] = [{"dataset": "scraped", "oldest_record": "2026-01-01",
                                            "age_days": 1}]
    failing["request"]["deployment"]["regions"] = ["us"]
    return failing


def test_every_check_explains_itself_in_its_own_words(bundle: PolicyBundle,
                                                      base_facts: dict[str, Any]) -> None:
    failing = _failing(base_facts)
    seen = set()
    for facts in [*_scenarios(base_facts), failing]:
        for c in _decide(bundle, facts)["checks"]:
            family = _family(c["rule_id"])
            words, facts_keys, data_keys = _OWN_WORDS[family]
            assert re.match(words, c["message"]), c
            assert (set(c["explain"]["facts"]), set(c["explain"]["data"])) == (facts_keys, data_keys), c
            seen.add(family)
    assert seen == set(_OWN_WORDS)


# ------------------------------------------------------------------ the tier


@pytest.mark.parametrize("engine", EMBEDDED_ENGINES)
def test_one_unknown_change_class_leaves_the_tier_unknown_on_every_engine(
        bundle: PolicyBundle, base_facts: dict[str, Any], engine: str) -> None:
    """The tier is the heaviest of *all* the classes: a known class beside an unknown one must
    not lend the request its tier. (regorus drops a whole partial set when one element's head is
    undefined, so only regopy and OPA would show the known class's tier if the policy did not
    check for unknown classes first.)"""
    facts = _facts(base_facts)
    facts["request"]["change_classes"] = ["prompt_tweak", "yolo_release"]
    decision = _decide(bundle, facts, engine=engine)
    assert (decision["outcome"], decision["tier"]) == ("deny", "unknown")
    assert _blocking(decision) == {"request.change_classes"}


# ------------------------------------------------------------------ a minimum SLO


def _with_min_slo(bundle: PolicyBundle) -> dict[str, Any]:
    data = copy.deepcopy(bundle.data)
    data["gates"]["serving"]["throughput_per_s"] = {"min": 100.0}
    return data


@pytest.mark.parametrize("throughput, outcome", [
    (99.9, "deny"), (100.0, "approve"), (100.1, "approve"), (None, "deny"), ("fast", "deny")])
def test_a_minimum_slo_is_met_only_at_or_above_it(bundle: PolicyBundle, base_facts: dict[str, Any],
                                                  throughput: object, outcome: str) -> None:
    facts = _facts(base_facts)
    facts["evidence"]["serving"]["throughput_per_s"] = throughput
    decision = _decide(bundle, facts, _with_min_slo(bundle))
    assert decision["outcome"] == outcome
    assert _blocking(decision) == (set() if outcome == "approve" else {"slo.throughput_per_s.min"})
    check = next(c for c in decision["checks"] if c["rule_id"] == "slo.throughput_per_s.min")
    assert check["passed"] is (outcome == "approve")


def test_an_unreported_minimum_slo_denies(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    decision = _decide(bundle, _facts(base_facts), _with_min_slo(bundle))  # no throughput_per_s
    assert decision["outcome"] == "deny"
    assert _blocking(decision) == {"slo.throughput_per_s.min"}


def test_a_maximum_slo_is_met_at_the_maximum(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    facts = _facts(base_facts)
    facts["evidence"]["serving"]["latency_ms_p95"] = 50.0
    assert _decide(bundle, facts)["outcome"] == "approve"


# ------------------------------------------------------------------ subprocessors abroad


def _with_us_subprocessor(bundle: PolicyBundle, safeguard: str | None) -> dict[str, Any]:
    data = copy.deepcopy(bundle.data)
    classes = data["purposes"]["purposes"]["ticket_routing"]["data_classes"]
    sp: dict[str, Any] = {"name": "US GPU Inc.", "service": "serving", "data_classes": list(classes),
                          "regions": ["us"], "assurances": ["dpa-signed"]}
    if safeguard:
        sp["transfer_safeguard"] = safeguard
    data["subprocessors"]["subprocessors"]["us-gpu"] = sp
    return data


@pytest.mark.parametrize("safeguard, outcome", [("eu-scc-2021", "approve"), (None, "deny")])
def test_a_subprocessor_outside_residency_needs_a_transfer_safeguard(
        bundle: PolicyBundle, base_facts: dict[str, Any], safeguard: str | None, outcome: str) -> None:
    facts = _facts(base_facts)
    facts["request"]["deployment"]["subprocessors"] = ["eu-gpu-cloud", "us-gpu"]
    decision = _decide(bundle, facts, _with_us_subprocessor(bundle, safeguard))
    assert decision["outcome"] == outcome
    assert _blocking(decision) == (set() if safeguard else {"residency.subprocessor.us-gpu"})
    if not safeguard:
        finding = next(f for f in decision["findings"] if f["rule_id"] == "residency.subprocessor.us-gpu")
        assert "outside residency without a transfer safeguard" in finding["message"]


# ------------------------------------------------------------------ the eval's baseline


@pytest.mark.parametrize("matches", ["absent", None, "yes", 1, False])
def test_only_a_baseline_that_positively_matches_passes(bundle: PolicyBundle, base_facts: dict[str, Any],
                                                        matches: object) -> None:
    facts = _facts(base_facts)
    if matches == "absent":
        del facts["evidence"]["eval"]["baseline_matches"]
    else:
        facts["evidence"]["eval"]["baseline_matches"] = matches
    decision = _decide(bundle, facts)
    assert decision["outcome"] == "deny"
    assert _blocking(decision) == {"evidence.eval.baseline"}


# ------------------------------------------------------------------ one check per rule id


def test_every_decision_case_checks_each_rule_id_once(session_world: World, bundle: PolicyBundle,
                                                      base_facts: dict[str, Any]) -> None:
    """A check answers once: two definitions both answering for one id (a value a bound reads
    while its `not reported` twin answers too) would show as two checks of one rule."""
    doc = yaml.safe_load((session_world.policies / "tests" / "promotion.yaml").read_text())
    data = _with_min_slo(bundle)
    for case in [*doc["cases"], {"name": "no serving measurement", "remove": ["/evidence/serving"]}]:
        for variant in (None, data):
            decision = _decide(bundle, _apply(base_facts, case, "promotion.yaml"), variant)
            ids = [c["rule_id"] for c in decision["checks"]]
            assert len(ids) == len(set(ids)), (case["name"], sorted(i for i in ids if ids.count(i) > 1))


def test_no_rollback_plan_is_one_problem_not_two(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    facts = _signoff(base_facts, ["serving_config"], [("ml-lead", "ada"), ("release-manager", "grace")])
    facts["evidence"]["present"].remove("rollback-plan")
    facts["evidence"].pop("rollback", None)
    decision = _decide(bundle, facts)
    [finding] = [f for f in decision["findings"] if f["rule_id"] == "rollback.plan"]
    assert finding["message"] == 'rollback plan: ["no verified rollback-plan"]'


def test_the_residency_explained_is_that_of_the_classes_served(bundle: PolicyBundle,
                                                               base_facts: dict[str, Any]) -> None:
    decision = _decide(bundle, _facts(base_facts))
    purpose = base_facts["request"]["deployment"]["purpose"]
    served = bundle.data["purposes"]["purposes"][purpose]["data_classes"]
    assert set(served) < set(bundle.data["charter"]["data_classes"])  # the charter has others
    [check] = [c for c in decision["checks"] if c["rule_id"].startswith("residency.region.")]
    assert set(check["explain"]["data"]["residency"]) == set(served)


# ------------------------------------------------------------------ only `passed: true` passes


def test_a_failed_check_is_never_counted_as_passed(bundle: PolicyBundle,
                                                   base_facts: dict[str, Any]) -> None:
    """``approve`` needs every check outside ``unpassed`` or waived; a failed check must stay in
    it even when its finding is somehow lost."""
    facts = _facts(base_facts)
    facts["evidence"]["serving"]["latency_ms_p95"] = 80
    probe = replace(bundle, rego_modules={**bundle.rego_modules, "probe.rego": PROBE})
    result = RegorusPolicy(probe, rule="data.slmgate.probe.result").evaluate(facts)
    assert "slo.latency_ms_p95.max" in result["unpassed"]
    assert "gate.stress.accuracy.min" not in result["unpassed"]


# ------------------------------------------------------------------ the completeness net


def _rules(source: str, head: str) -> list[tuple[int, int]]:
    """(first, last) line indexes of each top-level rule whose head starts with ``head``."""
    lines = source.splitlines()
    found = []
    for i, line in enumerate(lines):
        if not line.startswith(head):
            continue
        end = i
        if line.rstrip().endswith("{"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("}"))
        found.append((i, end))
    return found


def _without_lines(source: str, first: int, last: int) -> str:
    lines = source.splitlines()
    return "\n".join(lines[:first] + [""] * (last - first + 1) + lines[last + 1:]) + "\n"


def _scenarios(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Facts under which every domain check produces a result: a privacy-review retrain with
    training data, regions, subprocessors, a rollback plan and approvals; and a request with
    no region serving an undeclared purpose."""
    full = copy.deepcopy(base)
    full["request"]["change_classes"] = ["data_source_change"]
    full["evidence"]["present"] = [*full["evidence"]["present"], "rollback-plan"]
    full["evidence"]["approvals"] = [
        {"role": "privacy-officer", "signer": "sam", "request_bound": True},
        {"role": "ml-lead", "signer": "ada", "request_bound": True}]
    odd = copy.deepcopy(base)
    odd["request"]["deployment"] = {"purpose": "marketing_insights", "regions": [], "subprocessors": []}
    return [full, odd]


def _unreported(base: dict[str, Any]) -> dict[str, Any]:
    """Facts under which the checks of what is missing answer: a metric the eval did not
    report, an SLO no serving-config measured, a subprocessor subprocessors.yaml lacks."""
    facts = copy.deepcopy(base)
    del facts["evidence"]["eval"]["layers"]["stress"]["accuracy"]
    del facts["evidence"]["serving"]["latency_ms_p95"]
    facts["request"]["deployment"]["subprocessors"] = ["unknown-cloud"]
    return facts


def _rule_text(source: str, head: str) -> list[str]:
    lines = source.splitlines()
    return ["\n".join(lines[a:b + 1]) for a, b in _rules(source, head)]


def test_the_completeness_net_expects_every_kind_of_check(bundle: PolicyBundle) -> None:
    """One ``expected_checks`` rule per family of domain check, so none can vanish unnoticed."""
    source = bundle.rego_modules["promotion.rego"]
    checks = _rule_text(source, "domain_checks contains")
    ids = [re.search(r'^domain_checks contains \{"rule_id": "([\w.-]+)"|\bid := sprintf\("([\w.%-]+)"',
                     rule, re.M) for rule in checks]
    assert len(checks) >= 12 and all(ids), "a check rule names no rule id: has the layout changed?"
    families = {re.sub(r"\.%s.*", "", m.group(1) or m.group(2)) for m in ids if m}
    expected = "\n".join(_rule_text(source, "expected_checks contains"))
    for family in families:
        assert f'"{family}' in expected, f"no expected_checks rule for {family}"


def test_every_check_explains_itself(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    """Each check and finding carries a message and the facts and data it used, whether it
    passed or failed (a deleted ``msg``/``explain`` line must not go unnoticed)."""
    failing = _failing(base_facts)
    for facts in [*_scenarios(base_facts), failing]:
        decision = _decide(bundle, facts)
        for c in [*decision["checks"], *decision["findings"]]:
            assert isinstance(c["message"], str) and c["message"], c
            assert isinstance(c["explain"], dict) and set(c["explain"]) == {"facts", "data"}, c
    messages = {f["rule_id"]: f["message"] for f in _decide(bundle, failing)["findings"]}
    assert messages["evidence.present.serving-config"] == \
        "the automated tier requires verified serving-config evidence"


def test_a_tier_that_needs_no_eval_does_not_check_its_baseline(bundle: PolicyBundle,
                                                               base_facts: dict[str, Any]) -> None:
    data = copy.deepcopy(bundle.data)
    data["tiers"]["tiers"]["automated"]["requires_evidence"] = ["weights-manifest", "serving-config"]
    facts = _facts(base_facts)
    facts["evidence"]["eval"]["baseline_matches"] = False
    decision = _decide(bundle, facts, data)
    assert "evidence.eval.baseline" not in {c["rule_id"] for c in decision["checks"]}
    assert decision["outcome"] == "approve"


# ------------------------------------------------------------------ when serving is checked


def _serving_silent(bundle: PolicyBundle) -> dict[str, Any]:
    """Policy data in which nothing speaks of serving: no SLO, no tier requiring serving-config."""
    data = copy.deepcopy(bundle.data)
    data["gates"]["serving"] = {}
    data["tiers"]["tiers"]["automated"]["requires_evidence"] = ["weights-manifest", "eval-result"]
    return data


@pytest.mark.parametrize("speaks", [None, "tier", "request", "measurement", "slo"])
def test_the_serving_configuration_is_checked_whenever_anything_speaks_of_serving(
        bundle: PolicyBundle, base_facts: dict[str, Any], speaks: str | None) -> None:
    """A tier requiring serving-config, a stated serving config, a measured one or a serving
    SLO each make the request/measurement match a check; with none of them there is none."""
    data = _serving_silent(bundle)
    facts = _facts(base_facts, serving={}, present=["weights-manifest", "eval-result"])
    facts["request"]["deployment"].pop("serving")
    if speaks == "tier":
        data["tiers"]["tiers"]["automated"]["requires_evidence"].append("serving-config")
    elif speaks == "request":
        facts["request"]["deployment"]["serving"] = base_facts["request"]["deployment"]["serving"]
    elif speaks == "measurement":
        facts["evidence"]["serving"] = base_facts["evidence"]["serving"]
    elif speaks == "slo":
        data["gates"]["serving"] = {"latency_ms_p95": {"max": 50}}
    decision = _decide(bundle, facts, data)
    checked = {c["rule_id"] for c in decision["checks"]}
    if speaks is None:
        assert "evidence.serving.matches_request" not in checked
        assert decision["outcome"] == "approve", decision["findings"]
    else:
        assert "evidence.serving.matches_request" in _blocking(decision)
        assert decision["outcome"] == "deny"


@pytest.mark.parametrize("side, problem", [
    ("request", "the request does not state the serving configuration it deploys (deployment.serving)"),
    ("evidence", "no verified serving-config measured it"),
])
def test_a_missing_serving_side_is_the_only_serving_problem(bundle: PolicyBundle, base_facts: dict[str, Any],
                                                           side: str, problem: str) -> None:
    """Without one side there is nothing to compare field by field: the message says what is
    missing, not five fields of null."""
    facts = _facts(base_facts)
    if side == "request":
        facts["request"]["deployment"].pop("serving")
    else:
        facts["evidence"]["serving"] = {}
    finding = next(f for f in _decide(bundle, facts)["findings"]
                   if f["rule_id"] == "evidence.serving.matches_request")
    assert finding["message"] == f'serving configuration: ["{problem}"]'


def _grace_requests_and_approves(base_facts: dict[str, Any]) -> dict[str, Any]:
    """A human sign-off promotion requested by Grace, approved by Ada (ml-lead) and by Grace
    herself (release-manager)."""
    facts = _facts(base_facts, present=[*base_facts["evidence"]["present"], "rollback-plan"])
    facts["request"]["change_classes"] = ["model_family_change"]
    facts["request"]["requested_by"] = "grace@example.com"
    facts["evidence"]["approvals"] = [
        {"role": "ml-lead", "signer": "ada", "request_bound": True, "email": "ada@example.com"},
        {"role": "release-manager", "signer": "grace", "request_bound": True, "email": "grace@example.com"}]
    return facts


def test_separation_of_duties_holds_when_the_tier_data_omits_it(bundle: PolicyBundle,
                                                                 base_facts: dict[str, Any]) -> None:
    """The loader fills in `requester_may_approve: false` and `distinct_approvers: true`; data
    given to the policy another way (an OPA server) may not. The Rego's own defaults must be
    just as strict: no self-approval, one person for one role."""
    data = copy.deepcopy(bundle.data)
    tier = data["tiers"]["tiers"]["human_signoff"]
    del tier["requester_may_approve"], tier["distinct_approvers"]
    facts = _grace_requests_and_approves(base_facts)
    decision = _decide(bundle, facts, data)
    assert _blocking(decision) == {"approval.not_requester", "approval.release-manager"}
    explained = next(c for c in decision["checks"] if c["rule_id"] == "approval.not_requester")
    assert explained["explain"]["data"] == {"requester_may_approve": False}
    facts["request"]["requested_by"] = "someone@example.com"
    facts["evidence"]["approvals"][1].update(signer="ada", email="ada@example.com")
    assert _blocking(_decide(bundle, facts, data)) == {"approval.distinct_people"}


def test_a_tier_may_let_the_requester_approve(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    data = copy.deepcopy(bundle.data)
    data["tiers"]["tiers"]["human_signoff"]["requester_may_approve"] = True
    facts = _grace_requests_and_approves(base_facts)
    decision = _decide(bundle, facts, data)
    assert decision["outcome"] == "approve", decision["findings"]


def test_an_approval_without_an_email_is_never_the_requesters(bundle: PolicyBundle,
                                                               base_facts: dict[str, Any]) -> None:
    """Only an e-mail string can match the requester: a null e-mail against a null requester
    is not a self-approval."""
    facts = _facts(base_facts, present=[*base_facts["evidence"]["present"], "rollback-plan"])
    facts["request"]["change_classes"] = ["model_family_change"]
    facts["request"]["requested_by"] = None
    facts["evidence"]["approvals"] = [
        {"role": "ml-lead", "signer": "ada", "request_bound": True, "email": None},
        {"role": "release-manager", "signer": "grace", "request_bound": True, "email": None}]
    assert "approval.not_requester" not in _blocking(_decide(bundle, facts))


def test_a_tier_without_approvals_ignores_who_signed_one(bundle: PolicyBundle,
                                                        base_facts: dict[str, Any]) -> None:
    """The automated tier asks for no approval: a stray one by the requester changes nothing."""
    facts = _facts(base_facts)
    facts["request"]["requested_by"] = "grace@example.com"
    facts["evidence"]["approvals"] = [
        {"role": "ml-lead", "signer": "grace", "request_bound": True, "email": "grace@example.com"}]
    decision = _decide(bundle, facts)
    assert decision["outcome"] == "approve", decision["findings"]
    assert not {c["rule_id"] for c in decision["checks"]} & {"approval.not_requester",
                                                               "approval.distinct_people"}


def _signoff(base: dict[str, Any], classes: list[str], approvals: list[tuple[str, str]],
             bound: bool = True) -> dict[str, Any]:
    facts = _facts(base, present=[*base["evidence"]["present"], "rollback-plan"])
    facts["request"]["change_classes"] = classes
    facts["evidence"]["approvals"] = [
        {"role": role, "signer": who, "request_bound": bound, "email": f"{who}@example.com"}
        for role, who in approvals]
    return facts


def test_one_shortfall_of_people_is_reported_once(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    """privacy_review lists privacy-officer before ml-lead: the pair is one group, told once."""
    facts = _signoff(base_facts, ["data_source_change"], [("privacy-officer", "ada"), ("ml-lead", "ada")])
    finding = next(f for f in _decide(bundle, facts)["findings"]
                   if f["rule_id"] == "approval.distinct_people")
    assert finding["message"].count("need 2 distinct people, have 1") == 1, finding["message"]


def test_three_roles_need_three_people_even_when_every_pair_has_two(bundle: PolicyBundle,
                                                                   base_facts: dict[str, Any]) -> None:
    data = copy.deepcopy(bundle.data)
    data["tiers"]["tiers"]["human_signoff"]["approvals"] = [
        {"role": r, "count": 1} for r in ("ml-lead", "privacy-officer", "release-manager")]
    facts = _signoff(base_facts, ["model_family_change"], [
        ("ml-lead", "ada"), ("privacy-officer", "bo"), ("release-manager", "ada"), ("release-manager", "bo")])
    decision = _decide(bundle, facts, data)
    assert _blocking(decision) == {"approval.distinct_people"}
    assert "need 3 distinct people, have 2" in decision["findings"][0]["message"]


def test_a_self_approval_for_another_request_is_not_reported_as_one(bundle: PolicyBundle,
                                                                    base_facts: dict[str, Any]) -> None:
    """It does not count either way; the finding is only for approvals bound to this request."""
    facts = _signoff(base_facts, ["model_family_change"], [("release-manager", "grace")], bound=False)
    facts["request"]["requested_by"] = "grace@example.com"
    check = next(c for c in _decide(bundle, facts)["checks"] if c["rule_id"] == "approval.not_requester")
    assert check["passed"] is True


def test_a_tier_without_distinct_approvers_lets_one_person_fill_two_roles(
        bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    """`distinct_approvers: false` turns the check off: none is made, and none is expected."""
    data = copy.deepcopy(bundle.data)
    data["tiers"]["tiers"]["human_signoff"]["distinct_approvers"] = False
    facts = _signoff(base_facts, ["model_family_change"], [("ml-lead", "ada"), ("release-manager", "ada")])
    decision = _decide(bundle, facts, data)
    assert decision["outcome"] == "approve", decision["findings"]
    assert "approval.distinct_people" not in {c["rule_id"] for c in decision["checks"]}


def test_a_one_role_tier_has_no_distinct_people_check(bundle: PolicyBundle,
                                                       base_facts: dict[str, Any]) -> None:
    """With one role there is no other role to double up on; the count check says it all."""
    data = copy.deepcopy(bundle.data)
    data["tiers"]["tiers"]["human_signoff"]["approvals"] = [{"role": "ml-lead", "count": 2}]
    facts = _signoff(base_facts, ["model_family_change"], [("ml-lead", "ada"), ("ml-lead", "bo")])
    decision = _decide(bundle, facts, data)
    assert decision["outcome"] == "approve", decision["findings"]
    assert "approval.distinct_people" not in {c["rule_id"] for c in decision["checks"]}


def test_an_approval_carries_no_finding_at_all(bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    """Not even an info one: only a waived failure is reported as `waived: ...`."""
    decision = _decide(bundle, _facts(base_facts))
    assert decision["outcome"] == "approve"
    assert decision["findings"] == []
    facts = _facts(base_facts)
    facts["evidence"]["serving"]["latency_ms_p95"] = 80
    facts["waivers"]["active"] = [{"id": "W-1", "rule_id": "slo.latency_ms_p95.max"}]
    decision = _decide(bundle, facts)
    findings = [(f["rule_id"], f["severity"]) for f in decision["findings"]]
    assert findings == [("slo.latency_ms_p95.max", "info")]
    assert decision["findings"][0]["message"].startswith("waived: latency_ms_p95 80")


# The most expensive test last: `make mutate` runs this file with -x.
def test_every_domain_check_deleted_in_turn_is_caught_by_policy_complete(
        bundle: PolicyBundle, base_facts: dict[str, Any]) -> None:
    source = bundle.rego_modules["promotion.rego"]
    rules = _rules(source, "domain_checks contains")
    assert len(rules) >= 12, "the rule heads were not found: has promotion.rego changed its layout?"
    # An SLO with a minimum too (the bundle has maximums only), measured in the full scenario
    data = _with_min_slo(bundle)
    scenarios = _scenarios(base_facts)
    scenarios[0]["evidence"]["serving"]["throughput_per_s"] = 150.0
    scenarios.append(_unreported(base_facts))
    for facts in scenarios:  # with every rule present, the net holds and nothing is missing
        assert "policy.complete" not in _blocking(_decide(bundle, facts, data))
    assert _decide(bundle, scenarios[0], data)["outcome"] == "approve"
    missed = []
    for first, last in rules:
        rego = {**bundle.rego_modules, "promotion.rego": _without_lines(source, first, last)}
        caught = [("policy.complete" in _blocking(_decide(bundle, facts, data, rego=rego)))
                  for facts in scenarios]
        if not any(caught):
            missed.append(source.splitlines()[first])
    assert not missed, f"deleting these rules went unnoticed by policy.complete: {missed}"
