"""Envelope verification throughput: slmgate against securesystemslib's reference DSSE, on the
same envelopes in one run.

    python bench/bench_verify.py [-n 5000] [--repeat 5] [--profile | --steps]

For Ed25519 and ECDSA P-256, N distinct envelopes (each an in-toto Statement with an eval-result
predicate, ~1.3 KB) are verified three ways:

- ``slmgate verify_envelope``: the whole path against a trust policy of 6 identities (parse,
  payload type, signature, statement, revocation, validity, authorisation, threshold, predicate
  JSON Schema, subject, freshness);
- ``slmgate DSSE only``: ``Envelope.from_json`` + ``keys_that_signed`` with the one key;
- ``securesystemslib``: ``Envelope.from_dict(json.loads(raw)).verify([key], 1)``, which checks
  the signature only (and matches keys by key id, which slmgate never relies on);
- ``cryptography verify``: OpenSSL's bare signature check over precomputed PAE bytes (what
  securesystemslib's check is built on);
- ``slmgate's signature check (floor)``: ``PublicKey.verifies`` alone over the same bytes —
  for Ed25519 libsodium's check (PyNaCl), which slmgate uses for its speed, for P-256 the same
  OpenSSL check: the cost slmgate's path cannot go below.

``--steps`` times instead the full path's prefixes, each adding one step to the one before (the
DSSE check against the trust policy's keys, the Statement's JSON, its canonical-form check, the
rest of the Statement, the predicate schema, the envelope's sha256 and the result), beside the
full path: the differences say where the time beyond the signature goes, on fresh envelopes.

Timing: the envelopes are cut into chunks of 250; every contender verifies every chunk
``--repeat`` times, interleaved, and each chunk counts with its fastest time (so a burst of load
from another process spoils one sample, not the figure). Times are CPU time of this process
(``time.process_time``): on an idle machine the same as wall time, on a shared one the cost of
the code itself. ``--wall`` uses wall-clock time instead.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cryptography
import orjson
import securesystemslib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmgate.evidence import (  # noqa: E402
    PREDICATE_TYPES,
    Envelope,
    SigningKey,
    Statement,
    TrustedIdentity,
    TrustPolicy,
    VerifiedEvidence,
    format_time,
    make_statement,
    pae,
    sign_envelope,
    verify_envelope,
)
from slmgate.evidence._predicates import check_predicate  # noqa: E402
from slmgate.evidence._statement import statement_json  # noqa: E402

ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SUBJECT = "ab" * 32
BASELINE = "cd" * 32


def eval_predicate(i: int) -> dict[str, object]:
    metrics = {("regression", "accuracy"): (0.95, 0.93), ("regression", "macro_f1"): (0.94, 0.92),
               ("stress", "accuracy"): (0.90, 0.85), ("policy", "pii_escalation_recall"): (1.0, 1.0),
               ("policy", "false_escalation_rate"): (0.02, 0.03)}
    layers: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for (layer, name), (candidate, baseline) in metrics.items():
        layers.setdefault(layer, {"metrics": {}})["metrics"][name] = {
            "candidate": round(candidate - i * 1e-7, 7), "baseline": baseline}
    when = format_time(NOW - timedelta(seconds=i))
    return {
        "suite": {"name": "support-triage", "version": "1"},
        "harness": {"name": "bench", "version": "1"},
        "datasets": [{"layer": layer, "name": f"{layer}.jsonl", "digest": {"sha256": "ef" * 32},
                      "examples": 500} for layer in ("regression", "stress", "policy")],
        "layers": layers,
        "baseline": {"name": "support-triage", "digest": {"sha256": BASELINE}},
        "serving": {"device": "cpu", "dtype": "float32", "torch_version": "2.13.0+cpu"},
        "started_at": when, "finished_at": when,
    }


def build(algorithm: str, n: int) -> tuple[list[bytes], TrustPolicy, SigningKey]:
    signer = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    others = [SigningKey.generate("ed25519") for _ in range(5)]
    identities = [TrustedIdentity(f"other-{i}", "service", "other", k.public_key,
                                  frozenset({"serving-config"})) for i, k in enumerate(others)]
    identities.insert(2, TrustedIdentity("eval-harness", "service", "eval-harness", signer.public_key,
                                         frozenset({"eval-result"})))
    trust = TrustPolicy(tuple(identities), max_age={k: timedelta(days=14) for k in PREDICATE_TYPES})
    envelopes = [sign_envelope(make_statement("support-triage", SUBJECT, "eval-result",
                                              eval_predicate(i)), [signer]).to_json()
                 for i in range(n)]
    return envelopes, trust, signer


def raw_verifier(key: object) -> Callable[[bytes, bytes], object]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.verify
    if isinstance(key, ec.EllipticCurvePublicKey):
        return lambda signature, message: key.verify(signature, message, ECDSA_SHA256)
    raise TypeError(f"unsupported key {type(key).__name__}")


def contenders(trust: TrustPolicy, signer: SigningKey,
               envelopes: list[bytes]) -> dict[str, Callable[[bytes], object]]:
    crypto_key = serialization.load_pem_public_key(signer.public_key.to_pem())
    # securesystemslib needs the key id in the envelope to match its key's: give it slmgate's.
    sslib_key = SSlibKey.from_crypto(crypto_key, keyid=signer.keyid)  # type: ignore[arg-type]
    public = signer.public_key

    def full(raw: bytes) -> object:
        return verify_envelope(raw, trust, subject_sha256=SUBJECT, now=NOW)

    def dsse(raw: bytes) -> object:
        found = Envelope.from_json(raw).keys_that_signed([public])
        assert found
        return found

    def sslib(raw: bytes) -> object:
        return SslibEnvelope.from_dict(json.loads(raw)).verify([sslib_key], 1)

    prepared = {raw: (env.signatures[0].sig, pae(env.payload_type, env.payload))
                for raw, env in ((raw, Envelope.from_json(raw)) for raw in envelopes)}

    bare = raw_verifier(crypto_key)

    def openssl(raw: bytes) -> object:
        return bare(*prepared[raw])

    def floor(raw: bytes) -> object:
        assert public.verifies(*prepared[raw])
        return True

    return {"slmgate verify_envelope (full)": full, "slmgate DSSE only": dsse,
            "securesystemslib Envelope.verify": sslib, "cryptography verify": openssl,
            "slmgate's signature check (floor)": floor}


def steps(trust: TrustPolicy) -> dict[str, Callable[[bytes], object]]:
    """The full path's prefixes (``--steps``), each one step longer than the one before."""
    index = {key.keyid: key for key in trust.keys}

    def prefix(depth: int) -> Callable[[bytes], object]:
        def run(raw: bytes) -> object:
            envelope = Envelope.from_json(raw)
            signed = envelope.keys_that_signed_among(index)
            if depth == 1:
                return orjson.loads(envelope.payload)
            if depth == 2:
                return statement_json(envelope.payload)
            if depth < 3:
                return signed
            statement = Statement.parse(envelope.payload)
            if depth >= 4:
                check_predicate(statement.kind, statement.predicate)
            if depth >= 5:
                return VerifiedEvidence("envelope", statement, tuple(trust.identity_of(k) for k in signed),
                                        hashlib.sha256(raw).hexdigest())
            return statement
        return run

    names = ["DSSE check (trust policy's keys)", "+ Statement JSON (orjson.loads)",
             "+ canonical-form check", "+ rest of Statement.parse", "+ predicate schema",
             "+ sha256 and the result"]
    runs = {name: prefix(depth) for depth, name in enumerate(names)}
    runs["full path (+ trust steps 5-8, 10, 11)"] = lambda raw: verify_envelope(
        raw, trust, subject_sha256=SUBJECT, now=NOW)
    return runs


CHUNK = 250


def timed(fn: Callable[[bytes], object], envelopes: list[bytes], clock: Callable[[], float]) -> float:
    start = clock()
    for raw in envelopes:
        fn(raw)
    return clock() - start


def measure(runs: dict[str, Callable[[bytes], object]], envelopes: list[bytes], repeat: int,
            clock: Callable[[], float]) -> dict[str, float]:
    """Seconds per contender for all envelopes: the sum over chunks of each chunk's best time."""
    chunks = [envelopes[i:i + CHUNK] for i in range(0, len(envelopes), CHUNK)]
    best = {name: [float("inf")] * len(chunks) for name in runs}
    for _ in range(repeat):
        for c, chunk in enumerate(chunks):
            for name, fn in runs.items():
                best[name][c] = min(best[name][c], timed(fn, chunk, clock))
    return {name: sum(times) for name, times in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="envelopes per algorithm")
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best one counts")
    parser.add_argument("--profile", action="store_true", help="profile the full path instead")
    parser.add_argument("--steps", action="store_true",
                        help="time the full path's prefixes, one step more each (where the time goes)")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.process_time

    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"securesystemslib {securesystemslib.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; n={args.n}, "
          f"best of {args.repeat} per chunk of {CHUNK}, {'wall' if args.wall else 'CPU'} time")
    for algorithm in ("ed25519", "ecdsa-p256"):
        envelopes, trust, signer = build(algorithm, args.n)
        runs = contenders(trust, signer, envelopes)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(timed, runs["slmgate verify_envelope (full)"], envelopes, clock)
            print(f"\n{algorithm}:")
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)
            continue
        if args.steps:
            best = measure(steps(trust), envelopes, args.repeat, clock)
            print(f"\n{algorithm}: the full path's prefixes")
            for name, seconds in best.items():
                print(f"  {name:<40} {seconds / args.n * 1e6:>9.1f} µs")
            continue
        best = measure(runs, envelopes, args.repeat, clock)
        reference = args.n / best["securesystemslib Envelope.verify"]
        print(f"\n{algorithm} ({len(envelopes[0])} bytes per envelope)")
        print(f"  {'':<34} {'envelopes/s':>12} {'µs each':>9} {'vs securesystemslib':>20}")
        for name, seconds in best.items():
            rate = args.n / seconds
            print(f"  {name:<34} {rate:>12,.0f} {1e6 / rate:>9.1f} {rate / reference:>19.2f}x")


if __name__ == "__main__":
    main()
