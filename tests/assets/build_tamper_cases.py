"""Build the tamper suite: named bad DSSE envelopes, the good evidence they are swapped into, and
a promotion request, all from the committed test-only keys in ``keys/``.

    python tests/assets/build_tamper_cases.py                  # rewrite tests/assets/tamper/
    python tests/assets/build_tamper_cases.py --out DIR        # write elsewhere (the tests do)
    python tests/assets/build_tamper_cases.py --generate-keys  # make keys that are missing

Everything is fixed: keys, timestamps, model bytes, request. Ed25519 is deterministic and ECDSA
P-256 is signed deterministically (RFC 6979) here, so a rerun writes byte-identical files;
``tests/evidence/test_tamper_suite.py`` reruns this script and compares.

The envelopes are assembled here with ``cryptography``, ``json`` and ``base64`` only, so the
assets do not depend on the DSSE code under test: PAE, base64 and key ids are computed below.
slmgate is used for the canonical statement bytes and the approval digest, which define the
formats rather than check them.

``cases.json`` indexes every case: its file, the evidence ref of the promotion request it
replaces, and the verification step and exception that must refuse it (``null`` for the cases
that verify as envelopes and are refused by the promotion: the policy or the manifest check).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from slmgate.engine import approval_digest  # noqa: E402
from slmgate.evidence import PREDICATE_TYPES, canonical_json  # noqa: E402

HERE = Path(__file__).resolve().parent
KEYS = HERE / "keys"
NOW = "2026-11-20T12:00:00Z"  # the evaluation time the cases are judged at
ISSUED = "2026-11-20T11:00:00Z"  # when the good evidence was made
DRILL = "2026-10-31"
MODEL = "support-triage"
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"

# name -> algorithm. runtime signs with ECDSA P-256, everyone else with Ed25519.
KEY_ALGORITHMS = {
    "eval-harness": "ed25519", "runtime": "ecdsa-p256", "release-manager": "ed25519",
    "ml-lead": "ed25519", "ml-lead-token": "ed25519", "privacy-officer": "ed25519",
    "slmgate-gate": "ed25519", "retired-harness": "ed25519", "revoked-harness": "ed25519",
    "stranger": "ed25519",
}

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


# ------------------------------------------------------------------------------------ keys


def generate_missing_keys() -> None:
    KEYS.mkdir(exist_ok=True)
    for name, algorithm in KEY_ALGORITHMS.items():
        private, public = KEYS / f"{name}.key", KEYS / f"{name}.pub"
        if private.exists():
            continue
        key: PrivateKey = (ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519"
                           else ec.generate_private_key(ec.SECP256R1()))
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        print(f"generated {private.relative_to(ROOT)}", file=sys.stderr)


def load_key(name: str) -> PrivateKey:
    key = serialization.load_pem_private_key((KEYS / f"{name}.key").read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    return key


def keyid(name: str) -> str:
    """sha256 of the DER SubjectPublicKeyInfo: slmgate's key id."""
    spki = load_key(name).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


# ------------------------------------------------------------------------------------ DSSE


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(name: str, message: bytes) -> bytes:
    key = load_key(name)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


def envelope(payload: bytes, signers: list[str], payload_type: str = IN_TOTO) -> dict[str, Any]:
    message = pae(payload_type, payload)
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid(s), "sig": base64.b64encode(sign(s, message)).decode()}
                       for s in signers],
    }


def dump(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def statement(subject: str, kind: str, predicate: dict[str, Any]) -> bytes:
    return canonical_json({
        "_type": STATEMENT_V1,
        "subject": [{"name": MODEL, "digest": {"sha256": subject}}],
        "predicateType": PREDICATE_TYPES[kind],
        "predicate": predicate,
    })


# ------------------------------------------------------------------------------------ models


def model_files(seed: bytes) -> dict[str, bytes]:
    """The same files ``tests/conftest.write_model`` writes for a seed."""
    return {"config.json": json.dumps({"seed": seed.hex()}).encode(),
            "model.safetensors": seed * 4096}


def manifest(files: dict[str, bytes]) -> tuple[str, list[dict[str, str]]]:
    """model-signing v1.0 ``files`` serialization: per-file sha256, root over them in order."""
    resources = [{"name": name, "algorithm": "sha256", "digest": hashlib.sha256(data).hexdigest()}
                 for name, data in sorted(files.items())]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    return root, resources


CANDIDATE, CANDIDATE_RESOURCES = manifest(model_files(b"\x01\x02"))
BASELINE, _ = manifest(model_files(b"\x03\x04"))  # also the previous candidate, 1.0.0
SIBLING, _ = manifest(model_files(b"\x07\x08"))  # another candidate of this model, 1.1.0-rc2
OTHER_MODEL, OTHER_RESOURCES = manifest(model_files(b"\x05\x06"))


# ------------------------------------------------------------------------------------ predicates


def weights_manifest(resources: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False,
                          "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"]},
        "resources": resources, "created_at": ISSUED,
    }


def eval_result(when: str = ISSUED) -> dict[str, Any]:
    metrics = {("regression", "accuracy"): (0.95, 0.93), ("regression", "macro_f1"): (0.94, 0.92),
               ("stress", "accuracy"): (0.90, 0.85), ("policy", "pii_escalation_recall"): (1.0, 1.0),
               ("policy", "false_escalation_rate"): (0.02, 0.03)}
    layers: dict[str, Any] = {}
    for (layer, name), (candidate, baseline) in metrics.items():
        layers.setdefault(layer, {"metrics": {}})["metrics"][name] = {
            "candidate": candidate, "baseline": baseline}
    digest = {"sha256": hashlib.sha256(b"golden set").hexdigest()}
    return {
        "suite": {"name": "support-triage", "version": "1"},
        "harness": {"name": "slmgate-tamper-assets", "version": "1"},
        "datasets": [{"layer": layer, "name": f"{layer}.jsonl", "digest": digest, "examples": 100}
                     for layer in ("regression", "stress", "policy")],
        "layers": layers,
        "baseline": {"name": MODEL, "digest": {"sha256": BASELINE}},
        "serving": {"device": "cpu", "dtype": "float32", "torch_version": "2.13.0+cpu"},
        "started_at": when, "finished_at": when,
    }


def serving_config() -> dict[str, Any]:
    return {
        "device": {"type": "cpu", "name": "asset cpu", "compute_capability": None, "memory_bytes": None},
        "software": {"torch_version": "2.13.0+cpu"}, "dtype": "float32", "quantization": "none",
        "batch_size": 8, "sequence_length": 64, "warmup_iterations": 1, "timed_iterations": 3,
        "latency_ms": {"p50": 0.75, "p95": 1.5}, "throughput_per_s": 1000.0,
        "peak_memory_bytes": None, "tensor_digest": {"sha256": "00" * 32}, "captured_at": ISSUED,
    }


def rollback_plan() -> dict[str, Any]:
    return {"created_at": ISSUED, "owner": "release-manager", "mechanism": "feature flag, 5% canary",
            "max_rollback_minutes": 10, "last_drill": DRILL,
            "previous": {"version": "1.0.0", "weights_digest": f"sha256:{BASELINE}"}}


def request_doc(rid: str, evidence: dict[str, str]) -> dict[str, Any]:
    """A human sign-off promotion of CANDIDATE (a serving-config change, which retrains nothing,
    so no training provenance is needed), without model.path."""
    return {
        "apiVersion": "slmgate.dev/v1", "kind": "PromotionRequest", "id": rid,
        "summary": "tamper-suite promotion", "requested_by": "tests@example.com",
        "model": {"name": MODEL, "version": "1.1.0", "weights_digest": f"sha256:{CANDIDATE}"},
        "baseline": {"name": MODEL, "version": "1.0.0", "weights_digest": f"sha256:{BASELINE}"},
        "change_classes": ["serving_config"],
        "deployment": {"purpose": "ticket_routing", "regions": ["eu"], "subprocessors": ["eu-gpu-cloud"],
                       "serving": {"device": "cpu", "dtype": "float32", "batch_size": 8,
                                   "quantization": "none", "runtime_version": "2.13.0+cpu"}},
        "evidence": [{"ref": ref, "path": path} for ref, path in evidence.items()],
    }


REQUEST_ID = "req-tamper-suite"
GOOD = {  # evidence ref -> file, all under good/
    "weights-manifest": "good/weights-manifest.dsse.json",
    "eval-result": "good/eval-result.dsse.json",
    "serving-config": "good/serving-config.dsse.json",
    "rollback-plan": "good/rollback-plan.dsse.json",
    "approval": "good/approval.dsse.json",
}


def approval(rid: str, doc: dict[str, Any], evidence: dict[str, bytes]) -> dict[str, Any]:
    """An approval of ``doc`` whose envelopes (by ref, as written) are ``evidence``: it signs the
    request's stable digest, which covers those envelopes' digests."""
    return {"request_id": rid, "request_digest": approval_digest(doc, evidence), "decision": "approve",
            "approved_at": ISSUED, "comment": "four eyes: ML lead and release manager"}


# ------------------------------------------------------------------------------------ cases


def _reencode(env: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Edit the statement inside a signed envelope and put it back, leaving the signature."""
    doc = copy.deepcopy(env)
    st = json.loads(base64.b64decode(doc["payload"]))
    edit(st)
    doc["payload"] = base64.b64encode(canonical_json(st)).decode()
    return doc


def _flip_signature(env: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(env)
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[5] ^= 0x40
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return doc


def _raise_stress(st: dict[str, Any]) -> None:
    st["predicate"]["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = 0.99


def build(out: Path) -> None:
    good_request = request_doc(REQUEST_ID, GOOD)
    other_request = request_doc("req-some-other-promotion", GOOD)
    other_request["summary"] = "a different promotion"

    good_eval = envelope(statement(CANDIDATE, "eval-result", eval_result()), ["eval-harness"])
    good = {
        "weights-manifest": envelope(statement(CANDIDATE, "weights-manifest",
                                               weights_manifest(CANDIDATE_RESOURCES)), ["runtime"]),
        "eval-result": good_eval,
        "serving-config": envelope(statement(CANDIDATE, "serving-config", serving_config()), ["runtime"]),
        "rollback-plan": envelope(statement(CANDIDATE, "rollback-plan", rollback_plan()),
                                  ["release-manager"]),
    }
    written = {ref: dump(env) for ref, env in good.items()}
    good["approval"] = envelope(statement(CANDIDATE, "approval",
                                          approval(REQUEST_ID, good_request, written)),
                                ["ml-lead", "release-manager"])
    eval_st = statement(CANDIDATE, "eval-result", eval_result())
    stale = "2026-11-05T12:00:00Z"  # 15 days before NOW; eval results may be 14 days old
    future = "2026-11-20T13:00:00Z"  # an hour after NOW; the allowed skew is 5 minutes
    bad_schema = eval_result()
    bad_schema["layers"]["regression"]["metrics"]["accuracy"]["candidate"] = "0.95"
    no_time = eval_result()
    del no_time["finished_at"]
    twice_subject = eval_st.replace(b'"subject":', b'"subject":[{"name":"%s","digest":{"sha256":"%s"}}],'
                                    b'"subject":' % (MODEL.encode(), OTHER_MODEL.encode()), 1)
    stray_bits = copy.deepcopy(good_eval)
    stray_bits["payload"] = _stray_bits(stray_bits["payload"])
    lying_hint = envelope(eval_st, ["stranger"])
    lying_hint["signatures"][0]["keyid"] = keyid("eval-harness")
    own_resources = copy.deepcopy(CANDIDATE_RESOURCES)
    own_resources[0]["digest"] = hashlib.sha256(b"some other config").hexdigest()

    cases: list[tuple[str, str, dict[str, Any], str | None, str | None, str]] = [
        ("payload-altered", "eval-result", _reencode(good_eval, _raise_stress), "signature",
         "SignatureError", "stress accuracy raised inside the signed eval result"),
        ("signature-altered", "eval-result", _flip_signature(good_eval), "signature",
         "SignatureError", "one bit of the signature flipped"),
        ("unknown-key", "eval-result", envelope(eval_st, ["stranger"]), "signature",
         "SignatureError", "signed by a key the trust policy does not know"),
        ("key-id-hint-lies", "eval-result", lying_hint, "signature", "SignatureError",
         "signed by an unknown key, claiming the eval harness's key id"),
        ("revoked-key", "eval-result", envelope(eval_st, ["revoked-harness"]), "key-revoked",
         "KeyRevokedError", "signed by a key listed in revoked_keyids"),
        ("key-outside-validity-window", "eval-result", envelope(eval_st, ["retired-harness"]),
         "key-validity", "KeyNotValidError", "signed by a key whose validity ended in June"),
        ("key-not-allowed-for-type", "eval-result", envelope(eval_st, ["runtime"]),
         "key-authorization", "KeyNotAuthorizedError",
         "an eval result signed by the runtime, which may sign manifests and serving configs only"),
        ("threshold-one-key-repeated", "approval",
         envelope(statement(CANDIDATE, "approval", approval(REQUEST_ID, good_request, written)),
                  ["ml-lead", "ml-lead"]), "threshold", "ThresholdError",
         "an approval needs 2 people; one key signed it twice"),
        ("threshold-one-person-two-keys", "approval",
         envelope(statement(CANDIDATE, "approval", approval(REQUEST_ID, good_request, written)),
                  ["ml-lead", "ml-lead-token"]), "threshold", "ThresholdError",
         "an approval needs 2 people; one person signed it with both of her keys"),
        ("predicate-schema-violation", "eval-result",
         envelope(statement(CANDIDATE, "eval-result", bad_schema), ["eval-harness"]), "predicate",
         "PredicateSchemaError", "a metric given as a string"),
        ("subject-of-another-model", "eval-result",
         envelope(statement(OTHER_MODEL, "eval-result", eval_result()), ["eval-harness"]),
         "subject", "SubjectMismatchError", "an eval result about another model's weights"),
        ("older-candidate-replayed", "eval-result",
         envelope(statement(BASELINE, "eval-result", eval_result()), ["eval-harness"]),
         "subject", "SubjectMismatchError",
         "the eval result of the previous candidate (1.0.0) replayed for this one"),
        ("candidates-mixed", "serving-config",
         envelope(statement(SIBLING, "serving-config", serving_config()), ["runtime"]),
         "subject", "SubjectMismatchError",
         "the serving config of a sibling candidate (1.1.0-rc2) in this candidate's request"),
        ("stale", "eval-result",
         envelope(statement(CANDIDATE, "eval-result", eval_result(stale)), ["eval-harness"]),
         "freshness", "StaleEvidenceError", "an eval result 15 days old; the maximum is 14"),
        ("future-dated", "eval-result",
         envelope(statement(CANDIDATE, "eval-result", eval_result(future)), ["eval-harness"]),
         "freshness", "FutureEvidenceError", "an eval result dated an hour after the evaluation"),
        ("payload-type-mismatch", "eval-result",
         envelope(eval_st, ["eval-harness"], payload_type="application/json"), "payload-type",
         "PayloadTypeError", "a validly signed statement declared as plain application/json"),
        ("not-a-statement", "eval-result",
         envelope(b'{"hello": "world"}', ["eval-harness"]), "statement", "StatementFormatError",
         "validly signed JSON that is not an in-toto Statement"),
        ("no-issue-time", "eval-result",
         envelope(statement(CANDIDATE, "eval-result", no_time), ["eval-harness"]), "statement",
         "StatementFormatError", "an eval result without finished_at cannot be judged fresh"),
        ("statement-repeats-a-key", "eval-result", envelope(twice_subject, ["eval-harness"]),
         "statement", "StatementFormatError",
         "a signed statement with two subject keys, which two JSON parsers could read two ways"),
        ("invalid-base64", "eval-result", {**good_eval, "payload": "%%%not-base64%%%"}, "parse",
         "EnvelopeFormatError", "the payload is not base64"),
        ("non-canonical-base64", "eval-result", stray_bits, "parse", "EnvelopeFormatError",
         "the payload's last base64 character carries stray bits (a second spelling)"),
        ("approval-for-another-request", "approval",
         envelope(statement(CANDIDATE, "approval", approval(other_request["id"], other_request, written)),
                  ["ml-lead", "release-manager"]), None, None,
         "a valid approval of a different promotion request: not bound to this one"),
        ("manifest-disagrees-with-subject", "weights-manifest",
         envelope(statement(CANDIDATE, "weights-manifest", weights_manifest(own_resources)),
                  ["runtime"]), None, None,
         "a signed manifest whose resources do not hash to its subject (checked by the gate)"),
    ]

    out.mkdir(parents=True, exist_ok=True)
    (out / "good").mkdir(exist_ok=True)
    for ref, env in good.items():
        (out / GOOD[ref]).write_bytes(dump(env))
    (out / "request.json").write_bytes(dump(good_request))
    index = []
    for name, ref, env, step, exception, description in cases:
        (out / f"{name}.dsse.json").write_bytes(dump(env))
        index.append({"name": name, "file": f"{name}.dsse.json", "ref": ref, "step": step,
                      "exception": exception, "description": description})
    (out / "cases.json").write_bytes(dump({
        "now": NOW, "subject": CANDIDATE, "trust": "../trust.yaml", "request": "request.json",
        "good": GOOD, "cases": index,
    }))


def _stray_bits(b64: str) -> str:
    """The same bytes spelt with non-zero unused bits in the last base64 character."""
    body = b64.rstrip("=")
    if len(body) % 4 == 0:
        raise ValueError("a payload whose length is a multiple of 3 has no stray bits")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(body[-1])
    return body[:-1] + alphabet[last | 1] + "=" * (len(b64) - len(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "tamper")
    parser.add_argument("--generate-keys", action="store_true",
                        help="create the test-only keys that are missing (never overwrites)")
    args = parser.parse_args()
    if args.generate_keys:
        generate_missing_keys()
    missing = [n for n in KEY_ALGORITHMS if not (KEYS / f"{n}.key").is_file()]
    if missing:
        sys.exit(f"missing test keys {missing} in {KEYS}; run with --generate-keys")
    build(args.out)


if __name__ == "__main__":
    main()
