"""The policy bundle: human-written YAML validated with cerberus, the Rego modules, the trust
policy, and a digest that names exactly this bundle in every decision."""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from slmgate.engine.policy import _bundle_cache
from slmgate.engine.policy._decision import DECISION_LOG_FIELDS
from slmgate.evidence import PREDICATE_TYPES, TrustPolicy
from slmgate.evidence.errors import InputError

if TYPE_CHECKING:  # cerberus and the YAML reader are imported when a bundle is validated
    import cerberus

    from slmgate.engine.policy._yamldoc import KeyPath, YamlDocument

DATA_FILES = ("charter", "purposes", "tiers", "subprocessors", "gates", "waivers")
EVAL_LAYERS = ("regression", "stress", "policy")

def _to_date(value: Any) -> Any:
    """Accept quoted ISO dates too; anything unparsable is left for the type check to refuse."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


_str = {"type": "string", "empty": False}
_strlist = {"type": "list", "schema": _str}
_days = {"type": "integer", "min": 0, "coerce": int}
_bound = {"type": "dict", "schema": {
    "min": {"type": "number"}, "max": {"type": "number"}, "max_drop": {"type": "number", "min": 0},
}, "minlength": 1}

SCHEMAS: dict[str, dict[str, Any]] = {
    "charter": {
        "program": {**_str, "required": True, "regex": r"^[a-z0-9][a-z0-9-]*$"},
        "title": {**_str, "required": True},
        "owner": {**_str, "required": True},
        "controller": {"type": "dict", "required": True, "schema": {
            "name": {**_str, "required": True}, "contact": {**_str, "required": True},
            "dpo": {**_str, "required": True},
        }},
        # Art. 30(1)(a): joint controllers and the representative (Art. 27), "none" stated.
        "joint_controllers": {"required": True, "anyof": [
            {"type": "string", "allowed": ["none"]},
            {"type": "list", "minlength": 1, "schema": {"type": "dict", "schema": {
                "name": {**_str, "required": True}, "contact": {**_str, "required": True},
                "responsibilities": {**_str, "required": True}}}},
        ]},
        "eu_representative": {"required": True, "anyof": [
            {"type": "string", "allowed": ["none"]},
            {"type": "dict", "schema": {"name": {**_str, "required": True},
                                        "contact": {**_str, "required": True}}},
        ]},
        "problem_statement": {**_str, "required": True},
        "business_metrics": {"type": "list", "required": True, "minlength": 1, "schema": {
            "type": "dict", "schema": {
                "id": {**_str, "required": True}, "name": {**_str, "required": True},
                "baseline": {"type": "number", "required": True},
                "target": {"type": "number", "required": True},
                "unit": {**_str, "required": True},
                "direction": {"type": "string", "required": True,
                              "allowed": ["lower_is_better", "higher_is_better"]},
            }}},
        "non_goals": {**_strlist, "required": True, "minlength": 1},
        "data_classes": {"type": "dict", "required": True, "minlength": 1, "valuesrules": {
            "type": "dict", "schema": {
                "description": {**_str, "required": True},
                "personal": {"type": "boolean", "required": True},
                "special_category": {"type": "boolean", "default": False},
                "residency": {**_strlist, "required": True, "minlength": 1},
            }}},
        "risk_appetite": {"type": "dict", "required": True, "schema": {
            "automation_allowed": {**_strlist, "required": True},
            "human_in_the_loop": {**_strlist, "required": True},
            "max_false_escalation_rate": {"type": "number", "min": 0, "max": 1},
        }},
        "release": {"type": "dict", "required": True, "schema": {
            "cadence": {"type": "string", "required": True,
                        "allowed": ["daily", "weekly", "biweekly", "monthly", "quarterly"]},
            "window": {"type": "string"},
        }},
        "security_measures": {"type": "list", "default": [], "schema": {"type": "dict", "schema": {
            "id": {**_str, "required": True},
            "category": {"type": "string", "required": True, "allowed": ["technical", "organisational"]},
            "description": {**_str, "required": True},
            "applies_to": {**_strlist, "default": []},
        }}},
        "decision_log": {"type": "dict", "default": {"mask": []}, "schema": {
            "mask": {"type": "list", "default": [],
                     "schema": {"type": "string", "allowed": sorted(DECISION_LOG_FIELDS)}},
        }},
        "rollback": {"type": "dict", "required": True, "schema": {
            "owner": {**_str, "required": True},
            "max_rollback_minutes": {"type": "integer", "required": True, "min": 1},
            "drill_max_age_days": {**_days, "required": True},
            "mechanism": {**_str, "required": True},
        }},
        "deployments": {"type": "dict", "default": {"max_verification_age_hours": 168}, "schema": {
            "max_verification_age_hours": {"type": "integer", "min": 1, "default": 168},
        }},
        # Operations: the cost model (device-hours x price) and which business metric each
        # executive trajectory is charted against (`slmgate ops import`, `report program`).
        "operations": {"type": "dict", "schema": {
            "cost_model": {"type": "dict", "required": True, "schema": {
                "device": {**_str, "required": True},
                "price_per_device_hour": {"type": "number", "required": True, "min": 0},
                "currency": {"type": "string", "required": True, "regex": r"^[A-Z]{3}$"},
                "device_hours_per_week": {"type": "number", "min": 0, "max": 168 * 10000},
            }},
            "trajectories": {"type": "dict", "schema": {
                name: {**_str, "required": True} for name in ("cost", "defects", "adoption")}},
        }},
    },
    "purposes": {
        "purposes": {"type": "dict", "required": True, "minlength": 1, "valuesrules": {
            "type": "dict", "schema": {
                "name": {**_str, "required": True},
                "uses": {"type": "list", "required": True, "minlength": 1,
                         "schema": {"type": "string", "allowed": ["serving", "training"]}},
                "lawful_basis": {"type": "string", "required": True, "allowed": [
                    "consent", "contract", "legal_obligation", "vital_interests",
                    "public_task", "legitimate_interests"]},
                "legitimate_interest": {"type": "string"},
                "data_subjects": {**_strlist, "required": True, "minlength": 1},
                "data_classes": {**_strlist, "required": True, "minlength": 1},
                "retention_days": {**_days, "required": True},
            }}},
        "datasets": {"type": "dict", "default": {}, "valuesrules": {"type": "dict", "schema": {
            "purpose": {**_str, "required": True}, "description": {**_str, "required": True},
            "data_classes": {**_strlist, "required": True}, "store": {"type": "string"},
            "retention_days": {**_days, "required": True},
            # false: the dataset holds no personal data (checked against its data classes), so
            # its purpose's storage limit does not bound it and the RoPA sets no erasure limit
            "personal_data": {"type": "boolean", "default": True},
        }}},
        "derivative_flows": {"type": "dict", "default": {}, "valuesrules": {"type": "dict", "schema": {
            "source": {**_str, "required": True}, "purpose": {**_str, "required": True},
            "description": {**_str, "required": True},
            "readers": {**_strlist, "required": True, "minlength": 1},
            "retention_days": {**_days, "required": True},
        }}},
        # Who can read a row and why: a dataset or derivative flow to an internal reader role
        # or a subprocessor (subprocessors.yaml), with the access role it reads under.
        "flows": {"type": "dict", "default": {}, "valuesrules": {"type": "dict", "schema": {
            "from": {**_str, "required": True}, "to": {**_str, "required": True},
            "access_role": {**_str, "required": True}, "description": {**_str, "required": True},
        }}},
    },
    "tiers": {
        "tiers": {"type": "dict", "required": True, "minlength": 1, "valuesrules": {
            "type": "dict", "schema": {
                "rank": {"type": "integer", "required": True, "min": 0},
                "description": {**_str, "required": True},
                "requires_evidence": {**_strlist, "required": True, "minlength": 1,
                                      "schema": {"type": "string", "allowed": sorted(PREDICATE_TYPES)}},
                "approvals": {"type": "list", "default": [], "schema": {"type": "dict", "schema": {
                    "role": {**_str, "required": True},
                    "count": {"type": "integer", "required": True, "min": 1},
                }}},
                # Separation of duties, on unless a tier says otherwise: the approvals come from
                # distinct people across roles, and never from the requester.
                "distinct_approvers": {"type": "boolean", "default": True},
                "requester_may_approve": {"type": "boolean", "default": False},
            }}},
        "change_classes": {"type": "dict", "required": True, "minlength": 1, "valuesrules": {
            "type": "dict", "schema": {
                "description": {**_str, "required": True}, "tier": {**_str, "required": True},
                "retrains": {"type": "boolean", "default": False},
            }}},
    },
    "subprocessors": {
        "subprocessors": {"type": "dict", "default": {}, "valuesrules": {"type": "dict", "schema": {
            "name": {**_str, "required": True}, "service": {**_str, "required": True},
            "data_classes": {**_strlist, "required": True, "minlength": 1},
            "regions": {**_strlist, "required": True, "minlength": 1},
            "assurances": {**_strlist, "required": True},
            "transfer_safeguard": {"type": "string"},
        }}},
    },
    "gates": {
        "eval": {"type": "dict", "required": True, "minlength": 1,
                 "keysrules": {"type": "string", "allowed": list(EVAL_LAYERS)},
                 "valuesrules": {"type": "dict", "minlength": 1, "valuesrules": _bound}},
        "serving": {"type": "dict", "default": {}, "valuesrules": _bound},
    },
    "waivers": {
        "waivers": {"type": "list", "default": [], "schema": {"type": "dict", "schema": {
            "id": {**_str, "required": True},
            "rule_id": {**_str, "required": True, "regex": r"^(gate|slo)\..+"},
            "scope": {"type": "dict", "required": True, "schema": {
                "model": {**_str, "required": True},
                "weights_digest": {**_str, "regex": r"^sha256:[0-9a-f]{64}$"}}},
            "owner": {**_str, "required": True},
            "ticket": {**_str, "required": True},
            "reason": {**_str, "required": True},
            "expires": {"type": "date", "required": True, "coerce": _to_date},
        }}},
    },
    "trust": {
        "identities": {"type": "dict", "required": True, "minlength": 1, "valuesrules": {
            "type": "dict", "schema": {
                "kind": {"type": "string", "required": True, "allowed": ["service", "person"]},
                "role": {**_str, "required": True},
                "person": {**_str},
                "email": {**_str, "regex": r"^[^@\s]+@[^@\s]+$"},
                "public_key": {**_str, "required": True},
                "may_sign": {**_strlist, "required": True, "minlength": 1},
                "valid_from": {"type": ["datetime", "string"]},
                "valid_until": {"type": ["datetime", "string"]},
            }}},
        "revoked_keyids": {**_strlist, "default": []},
        "thresholds": {"type": "dict", "default": {},
                       "valuesrules": {"type": "integer", "min": 1}},
        "max_age_days": {"type": "dict", "required": True,
                         "valuesrules": {"type": "number", "min": 0}},
        "max_clock_skew_minutes": {"type": "number", "min": 0, "default": 5},
    },
}


@dataclass(frozen=True)
class Problem:
    where: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}" if self.key else f"{self.where}: {self.message}"


class BundleInvalid(InputError):
    """The bundle failed validation; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        body = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"policy bundle invalid ({len(problems)} problem(s)):\n{body}")


@dataclass(frozen=True)
class PolicyBundle:
    root: Path
    data: dict[str, Any]  # what Rego sees as data.slmgate
    rego_modules: dict[str, str]  # file name -> source
    trust_policy: TrustPolicy | None  # None only when loaded without keys (policy tests)
    digest: str  # "sha256:<hex>" over every file that shapes a decision
    revision: str | None  # git commit of the policy repository, when it is one
    tests: dict[str, str] = field(default_factory=dict)  # tests/*.yaml name -> path
    files: Mapping[str, bytes] = field(default_factory=dict)  # what `digest` covers, as read

    @property
    def trust(self) -> TrustPolicy:
        if self.trust_policy is None:
            raise InputError("this bundle was loaded without its keys; it cannot verify evidence",
                             file=str(self.root / "trust.yaml"))
        return self.trust_policy


def _flatten(errors: Any, path: KeyPath) -> list[tuple[KeyPath, str]]:
    out: list[tuple[KeyPath, str]] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            out.extend(_flatten(value, (*path, key)))
    elif isinstance(errors, list):
        for item in errors:
            out.extend(_flatten(item, path))
    else:
        out.append((path, str(errors)))
    return out


@functools.cache
def _own_schema() -> type:
    import cerberus.schema

    class _OwnSchema(cerberus.schema.DefinitionSchema):  # type: ignore[misc]
        """One of this module's own schemas: expanded as cerberus expands every schema, but not
        checked against cerberus's rules on every run — that check cost a promote 0.3 s, for
        constants of this module. ``tests/engine/policy/test_policy_yaml.py`` checks each of
        ``SCHEMAS`` the usual way, so a malformed schema still fails the build."""

        def validate(self, schema: Any = None) -> None:
            return None

    return _OwnSchema


@functools.cache
def _validator(name: str) -> cerberus.Validator:
    """One validator per schema, built once per process."""
    import cerberus

    validator = cerberus.Validator()
    validator.schema = _own_schema()(validator, SCHEMAS[name])
    return validator


def _validate(doc: YamlDocument, name: str) -> tuple[dict[str, Any], list[Problem]]:
    if not isinstance(doc.data, dict):
        return {}, [Problem(str(doc.path), "", "expected a mapping at the top level")]
    validator = _validator(name)
    if validator.validate(doc.data):
        return validator.document, []
    problems = [
        Problem(doc.where(p), ".".join(str(k) for k in p), msg)
        for p, msg in _flatten(validator.errors, ())
    ]
    return {}, problems


def load_trust_policy(path: Path) -> TrustPolicy:
    """A standalone trust.yaml (the caller's root of trust for `evidence verify`, `ledger
    verify`, `packet verify`), validated like the bundle's: file:line, key path, expectation."""
    from slmgate.engine.policy._yamldoc import load_yaml as _load  # same loader as the bundle's files

    data, problems = _validate(_load(path), "trust")
    if problems:
        raise BundleInvalid(problems)
    return TrustPolicy.from_document(data, base_dir=path.parent, source=str(path))


def retention_overruns(purposes: Mapping[str, Any]) -> list[tuple[tuple[str, str, str], str]]:
    """Each dataset or derivative flow of purposes.yaml kept longer than its purpose allows, as
    (key path, message naming both). A dataset declared ``personal_data: false`` is not bounded
    by its purpose (GDPR Art. 5(1)(e) limits the storage of personal data);
    ``_retention_and_flows`` refuses that declaration on a dataset with a personal data class."""
    out = []
    for section in ("datasets", "derivative_flows"):
        for name, d in purposes.get(section, {}).items():
            purpose = purposes["purposes"].get(d["purpose"])
            if d.get("personal_data", True) is False:  # storage limitation is about personal data
                continue
            if purpose and d["retention_days"] > purpose["retention_days"]:
                out.append(((section, name, "retention_days"),
                            f"{section[:-1].replace('_', ' ')} {name} is kept {d['retention_days']} "
                            f"days, longer than the {purpose['retention_days']} days of its purpose "
                            f"{d['purpose']}"))
    return out


def personal_data_misdeclared(data: Mapping[str, Any]) -> list[tuple[tuple[str, str, str], str]]:
    """Each dataset declared ``personal_data: false`` whose data classes include a personal one
    (charter.yaml; an unknown class counts as personal), as (key path, message)."""
    classes = data["charter"]["data_classes"]
    out = []
    for name, d in data["purposes"].get("datasets", {}).items():
        personal = sorted(c for c in d["data_classes"] if classes.get(c, {}).get("personal", True))
        if d.get("personal_data", True) is False and personal:
            out.append((("datasets", name, "personal_data"), f"dataset {name} is declared to hold no "
                        f"personal data, but its data classes {', '.join(personal)} are personal "
                        "(charter.yaml)"))
    return out


def _retention_and_flows(docs: dict[str, YamlDocument], data: dict[str, Any]) -> list[Problem]:
    """A dataset or derivative kept longer than its purpose allows; a flow from something
    undeclared, or to a subprocessor not declared for the data classes it would receive."""
    problems: list[Problem] = []

    def bad(key: KeyPath, message: str) -> None:
        problems.append(Problem(docs["purposes"].where(key), ".".join(str(k) for k in key), message))

    purposes = data["purposes"]
    for key, message in retention_overruns(purposes):
        bad(key, message)
    for key, message in personal_data_misdeclared(data):
        bad(key, message)
    subs = data["subprocessors"]["subprocessors"]
    for fid, f in purposes["flows"].items():
        source = f["from"]
        if source in purposes["datasets"]:
            carried = set(purposes["datasets"][source]["data_classes"])
        elif source in purposes["derivative_flows"]:
            origin = purposes["derivative_flows"][source]["source"]
            carried = set(purposes["datasets"].get(origin, {}).get("data_classes", []))
        else:
            bad(("flows", fid, "from"), f"unknown dataset or derivative flow {source!r}")
            continue
        if f["to"] in subs and (undeclared := sorted(carried - set(subs[f["to"]]["data_classes"]))):
            bad(("flows", fid, "to"), f"subprocessor {f['to']} is not declared (subprocessors.yaml) "
                f"for data classes {', '.join(undeclared)} that {source} carries")
    return problems


def _cross_references(docs: dict[str, YamlDocument], data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(name: str, key: KeyPath, message: str) -> None:
        problems.append(Problem(docs[name].where(key), ".".join(str(k) for k in key), message))

    classes = set(data["charter"]["data_classes"])
    metrics = {m["id"] for m in data["charter"]["business_metrics"]}
    for name, mid in ((data["charter"].get("operations") or {}).get("trajectories") or {}).items():
        if mid not in metrics:
            bad("charter", ("operations", "trajectories", name),
                f"unknown business metric {mid!r}; business_metrics declares {sorted(metrics)}")
    for i, measure in enumerate(data["charter"]["security_measures"]):
        for j, dc in enumerate(measure["applies_to"]):
            if dc not in classes:
                bad("charter", ("security_measures", i, "applies_to", j),
                    f"unknown data class {dc!r}; the charter declares {sorted(classes)}")
    purposes = data["purposes"]
    for pid, p in purposes["purposes"].items():
        for i, dc in enumerate(p["data_classes"]):
            if dc not in classes:
                bad("purposes", ("purposes", pid, "data_classes", i),
                    f"unknown data class {dc!r}; the charter declares {sorted(classes)}")
        if p["lawful_basis"] == "legitimate_interests" and not p.get("legitimate_interest"):
            bad("purposes", ("purposes", pid), "legitimate_interests needs a legitimate_interest")
    for did, d in purposes["datasets"].items():
        if d["purpose"] not in purposes["purposes"]:
            bad("purposes", ("datasets", did, "purpose"), f"unknown purpose {d['purpose']!r}")
        for i, dc in enumerate(d["data_classes"]):
            if dc not in classes:
                bad("purposes", ("datasets", did, "data_classes", i), f"unknown data class {dc!r}")
    for fid, f in purposes["derivative_flows"].items():
        if f["source"] not in purposes["datasets"]:
            bad("purposes", ("derivative_flows", fid, "source"), f"unknown dataset {f['source']!r}")
        if f["purpose"] not in purposes["purposes"]:
            bad("purposes", ("derivative_flows", fid, "purpose"), f"unknown purpose {f['purpose']!r}")
    problems += _retention_and_flows(docs, data)

    tiers = data["tiers"]
    ranks: dict[int, str] = {}
    for tid, t in tiers["tiers"].items():
        if t["rank"] in ranks:
            bad("tiers", ("tiers", tid, "rank"), f"rank {t['rank']} is also {ranks[t['rank']]!r}'s")
        ranks[t["rank"]] = tid
    for cid, c in tiers["change_classes"].items():
        if c["tier"] not in tiers["tiers"]:
            bad("tiers", ("change_classes", cid, "tier"),
                f"unknown tier {c['tier']!r}; expected one of {sorted(tiers['tiers'])}")

    for sid, s in data["subprocessors"]["subprocessors"].items():
        for i, dc in enumerate(s["data_classes"]):
            if dc not in classes:
                bad("subprocessors", ("subprocessors", sid, "data_classes", i),
                    f"unknown data class {dc!r}")
                continue
            declared = data["charter"]["data_classes"][dc]
            outside = sorted(set(s["regions"]) - set(declared["residency"]))
            if outside and declared["personal"] and not s.get("transfer_safeguard"):
                bad("subprocessors", ("subprocessors", sid, "regions"),
                    f"{dc} is personal data resident in {declared['residency']}"
                    f" but is processed in {outside} without a transfer_safeguard")

    gate_ids = {
        f"gate.{layer}.{metric}.{bound}"
        for layer, metrics in data["gates"]["eval"].items()
        for metric, bounds in metrics.items() for bound in bounds
    } | {f"slo.{name}.{bound}" for name, bounds in data["gates"]["serving"].items() for bound in bounds}
    for i, w in enumerate(data["waivers"]["waivers"]):
        if w["rule_id"] not in gate_ids:
            bad("waivers", ("waivers", i, "rule_id"),
                f"no rule {w['rule_id']!r} in gates.yaml; waivable rules: {sorted(gate_ids)}")
    return problems


_V0_RULE = re.compile(r"^[a-z_]\w*(\[[^\]]*\])?\s*\{\s*$")


def lint_rego(name: str, source: str, where: str) -> list[Problem]:
    """What regopy does not reject on its own: v0 syntax. Every module imports rego.v1 (OPA
    1.x semantics on both engines) and no rule body opens without `if`."""
    problems = []
    if not re.search(r"^import rego\.v1\s*$", source, re.M):
        problems.append(Problem(where, "", "missing `import rego.v1` (v1 syntax is required)"))
    for i, line in enumerate(source.splitlines(), 1):
        if _V0_RULE.match(line):
            problems.append(Problem(f"{where}:{i}", "", f"v0 rule body without `if`: {line.strip()}"))
    return problems


def _revision(root: Path) -> str | None:
    """The commit of the git repository holding ``root`` (searching upwards, as git does), or
    None outside one or before its first commit. Asked of git itself: importing GitPython
    for this one question cost a promote more than the rest of loading the bundle."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha) else None


def bundle_digest(files: Mapping[str, bytes]) -> str:
    """``sha256:`` over every (relative path, bytes) pair, length-prefixed, in path order
    (compared part by part, so ``keys/a.pub`` sorts before ``keys.yaml``)."""
    h = hashlib.sha256()
    for rel in sorted(files, key=PurePosixPath):
        content = files[rel]
        h.update(b"%d:%s%d:" % (len(rel.encode()), rel.encode(), len(content)))
        h.update(content)
    return "sha256:" + h.hexdigest()


def _bundle_files(root: Path, data: dict[str, Any], rego_files: list[Path],
                  problems: list[Problem]) -> dict[str, bytes]:
    """The files that shape a decision — the YAML documents, the Rego modules and the public
    keys trust.yaml names — read once; the digest, the ledger and the packet all use these bytes."""
    paths = [root / f"{name}.yaml" for name in (*DATA_FILES, "trust")] + rego_files
    for name, ident in data["trust"]["identities"].items():
        key = root / ident["public_key"]
        if not key.resolve().is_relative_to(root.resolve()):
            problems.append(Problem(str(root / "trust.yaml"), f"identities.{name}.public_key",
                                    "the key file must lie inside the policy directory"))
        elif key.is_file():  # a missing key is already a problem when keys are required
            paths.append(key)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in dict.fromkeys(paths)}


def _validating_code() -> bytes:
    """What validation depends on beyond the bundle: this module's schemas and checks, the YAML
    reader's, and the two lists the schemas take in (``DECISION_LOG_FIELDS``, the predicate
    kinds). Part of every cache key, so that a bundle cached by one version of slmgate is
    validated again by another."""
    here = Path(__file__)
    lists = repr([sorted(DECISION_LOG_FIELDS), sorted(PREDICATE_TYPES.items())]).encode()
    return b"\0".join([here.read_bytes(), here.with_name("_yamldoc.py").read_bytes(), lists])


def _cache_key(root: Path, rego_files: list[Path]) -> tuple[str, dict[str, bytes]] | None:
    """The digest that finds this bundle in the cache: the YAML documents, the Rego modules and
    the validating code; with the bytes read. ``None`` when a file cannot be read (the full
    validation then says which)."""
    try:
        read = {p.relative_to(root).as_posix(): p.read_bytes()
                for p in [root / f"{name}.yaml" for name in (*DATA_FILES, "trust")] + rego_files}
    except OSError:
        return None
    return bundle_digest({**read, "\0slmgate-validator": _validating_code()}), read


def _cached(root: Path, key: str, read: dict[str, bytes], rego_files: list[Path]) -> PolicyBundle | None:
    """The bundle from its cache entry, when the files read now hash to the digest it names."""
    entry = _bundle_cache.lookup(key)
    if entry is None:
        return None
    files = dict(read)
    for rel in entry["keys"]:
        key_path = root / rel
        if not key_path.resolve().is_relative_to(root.resolve()) or not key_path.is_file():
            return None
        try:
            files[rel] = key_path.read_bytes()
        except OSError:
            return None
    if bundle_digest(files) != entry["digest"]:
        return None
    data = entry["data"]
    try:
        trust = TrustPolicy.from_document(data["trust"], base_dir=root, source=str(root / "trust.yaml"))
    except InputError:
        return None  # the full validation reports it with the others
    return _bundle(root, data, rego_files, trust, files)


def _text(source: bytes) -> str:
    """A module's text as ``Path.read_text`` gives it (line endings made ``\\n``)."""
    return source.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _bundle(root: Path, data: dict[str, Any], rego_files: list[Path], trust: TrustPolicy | None,
            files: dict[str, bytes]) -> PolicyBundle:
    tests_dir = root / "tests"
    tests = {p.name: str(p) for p in sorted(tests_dir.glob("*.yaml"))} if tests_dir.is_dir() else {}
    return PolicyBundle(
        root=root,
        data={k: data[k] for k in DATA_FILES},
        rego_modules={p.name: _text(files[p.relative_to(root).as_posix()]) for p in rego_files},
        trust_policy=trust,
        digest=bundle_digest(files),
        files=files,
        revision=_revision(root),
        tests=tests,
    )


def load_bundle(root: Path, *, with_keys: bool = True) -> PolicyBundle:
    """Load and validate the bundle at ``root``; every problem is reported at once.

    A bundle whose bytes validated before is taken from the cache of validated bundles
    (``_bundle_cache``), checked by the digest of every file it covers.

    ``with_keys=False`` skips loading the trust policy's public keys (policy tests need no keys,
    and the default bundle in the source tree has none until `slmgate init`)."""
    if not root.is_dir():
        raise InputError("not a policy directory", file=str(root),
                         advice="pass the directory holding charter.yaml, tiers.yaml, ...")
    rego_dir = root / "rego"
    rego_files = sorted(rego_dir.glob("*.rego")) if rego_dir.is_dir() else []
    # The key reads and hashes every file and the validating code: only worth it with a cache.
    caching = with_keys and bool(rego_files) and _bundle_cache.cache_dir() is not None
    found = _cache_key(root, rego_files) if caching else None
    if found is not None:
        bundle = _cached(root, *found, rego_files)
        if bundle is not None:
            return bundle
    bundle, trust_document = _validated(root, rego_files, with_keys)
    # Kept only when the bytes validated are the bytes the key was computed from.
    if found is not None and all(bundle.files.get(rel) == data for rel, data in found[1].items()):
        _bundle_cache.store(found[0], digest=bundle.digest, keys=sorted(set(bundle.files) - set(found[1])),
                            data={**bundle.data, "trust": trust_document})
    return bundle


def _validated(root: Path, rego_files: list[Path], with_keys: bool) -> tuple[PolicyBundle, dict[str, Any]]:
    from slmgate.engine.policy._yamldoc import load_yaml

    problems: list[Problem] = []
    docs: dict[str, YamlDocument] = {}
    data: dict[str, Any] = {}
    for name in (*DATA_FILES, "trust"):
        path = root / f"{name}.yaml"
        try:
            docs[name] = load_yaml(path)
        except InputError as exc:
            problems.append(Problem(exc.file or str(path), exc.field or "", exc.detail))
            continue
        data[name], found = _validate(docs[name], name)
        problems.extend(found)
    if problems:
        raise BundleInvalid(problems)
    problems.extend(_cross_references(docs, data))
    if not rego_files:
        problems.append(Problem(str(root / "rego"), "", "no .rego modules"))
    for path in rego_files:
        problems.extend(lint_rego(path.name, path.read_text(encoding="utf-8"), str(path)))
    trust = None
    if with_keys:
        try:
            trust = TrustPolicy.from_document(data["trust"], base_dir=root,
                                              source=str(docs["trust"].path))
        except InputError as exc:
            problems.append(Problem(exc.file or str(docs["trust"].path), exc.field or "", exc.detail))
    files = _bundle_files(root, data, rego_files, problems)
    if problems:
        raise BundleInvalid(problems)
    for w in data["waivers"]["waivers"]:
        w["expires"] = w["expires"].isoformat() if isinstance(w["expires"], date) else w["expires"]
    return _bundle(root, data, rego_files, trust, files), data["trust"]
