"""The hostile requester (README, "Threat model"): nothing a requester writes can buy an approval,
make the gate read, keep or print anything outside the request's own evidence, or hang it.

Each case starts from a request that would be approved, makes one hostile change, runs the real
`slmgate promote` command in process with a ledger, a packet and the gate's key, and asserts the
exit code; that nothing approved; that an invalid request (exit 2) wrote nothing at all; and
that no byte of the gate's private key (the canary) reached stdout, stderr, the ledger or the
packet. Cases are named by the attack.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slmgate.engine.cli import main
from slmgate.evidence import make_statement, sign_envelope
from tests.conftest import MODEL, SERVING, World, eval_predicate, recent

GATE_KEY = "slmgate-gate.key"


@dataclass
class Case:
    """A request folder under attack: ``doc`` is written as request.json before the run."""

    world: World
    folder: Path
    doc: dict[str, Any]
    extra: list[str]
    raw: bytes | None = None  # request bytes written as they are, instead of ``doc``
    write: bool = True  # False: the attack laid request.json itself (a FIFO)
    with_key: bool = True

    @property
    def request(self) -> Path:
        return self.folder / "request.json"

    def add_evidence(self, ref: str, rel: str) -> None:
        self.doc["evidence"].append({"ref": ref, "path": rel})

    def envelope(self, ref: str) -> bytes:
        return (self.folder / f"{ref}.dsse.json").read_bytes()


@pytest.fixture
def case(world: World, tmp_path: Path) -> Case:
    evidence = world.standard_evidence(when=recent())
    path = world.request(tmp_path / "req", evidence)
    return Case(world, tmp_path / "req", json.loads(path.read_text()), [])


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    ledger: Path
    packet: Path


def run(case: Case) -> Outcome:
    if case.raw is not None:
        case.request.write_bytes(case.raw)
    elif case.write:
        case.request.write_text(json.dumps(case.doc, indent=2))
    ledger, packet = case.folder.parent / "ledger", case.folder.parent / "packet.pdf"
    key = ["--signing-key", str(case.world.secrets / GATE_KEY)] if case.with_key else []
    args = ["promote", str(case.request), "--policies", str(case.world.policies),
            "--ledger", str(ledger), *key, "--packet", str(packet), "--format", "json",
            *case.extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr, ledger, packet)


def _canaries(world: World) -> list[bytes]:
    key = (world.secrets / GATE_KEY).read_bytes()
    body = b"".join(line for line in key.splitlines() if b"-----" not in line)
    return [key, body[:40], base64.b64encode(key)[:40]]


def _written(outcome: Outcome) -> Iterator[bytes]:
    if outcome.packet.exists():
        yield outcome.packet.read_bytes()
    if outcome.ledger.exists():
        for path in outcome.ledger.rglob("*"):
            if path.is_file() and ".git" not in path.parts:
                yield path.read_bytes()
        yield subprocess.run(["git", "-C", str(outcome.ledger), "log", "-p", "--all"],
                             capture_output=True, check=False).stdout


def assert_contained(case: Case, outcome: Outcome, expected: int) -> None:
    """The exit code, no approval, nothing written on invalid input, no secret anywhere."""
    assert outcome.code == expected, (outcome.code, outcome.err[-2000:], outcome.out[-2000:])
    assert outcome.code != 0
    if expected == 2:
        assert not outcome.ledger.exists(), "a refused request reached the ledger"
        assert not outcome.packet.exists(), "a refused request produced a packet"
        report = json.loads(outcome.out)  # --format json: the error report, never a decision
        assert report["outcome"] == "error" and report["exit_code"] == 2, report
        assert "internal error" not in outcome.err
    else:
        doc = json.loads(outcome.out)
        assert doc["outcome"] != "approve"
        for name in outcome.ledger.rglob("*.dsse.json"):
            assert b'"outcome":"approve"' not in name.read_bytes()
    texts = [outcome.out.encode(), outcome.err.encode(), *_written(outcome)]
    for canary in _canaries(case.world):
        for text in texts:
            assert canary not in text, "the gate's private key leaked"


# ----------------------------------------------------------------------------- attacks
# Each returns the exit code the gate must give after the attack is applied to ``case``.

Attack = Callable[[Case], int]
ATTACKS: dict[str, Attack] = {}


def attack(name: str) -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        ATTACKS[name] = fn
        return fn
    return register


def _key_path(case: Case) -> Path:
    return case.world.secrets / GATE_KEY


# 1. Paths are confined ---------------------------------------------------------------

@attack("evidence path is the absolute path of the gate key")
def _(c: Case) -> int:
    c.add_evidence("key", str(_key_path(c)))
    return 2


@attack("evidence path climbs out with ../ to the gate key")
def _(c: Case) -> int:
    c.add_evidence("key", os.path.relpath(_key_path(c), c.folder))
    return 2


@attack("evidence path is a symlink beside the request to the gate key")
def _(c: Case) -> int:
    (c.folder / "innocent.dsse.json").symlink_to(_key_path(c))
    c.add_evidence("key", "innocent.dsse.json")
    return 2


@attack("evidence path is a symlink to a harmless file outside")
def _(c: Case) -> int:
    outside = c.folder.parent / "outside.json"
    outside.write_bytes(c.envelope("eval-result"))
    (c.folder / "eval.dsse.json").symlink_to(outside)
    c.doc["evidence"][1]["path"] = "eval.dsse.json"
    return 2


@attack("evidence path goes through a symlinked folder that leaves the request")
def _(c: Case) -> int:
    (c.folder / "linked").symlink_to(c.world.secrets, target_is_directory=True)
    c.add_evidence("key", f"linked/{GATE_KEY}")
    return 2


@attack("evidence path is /dev/zero")
def _(c: Case) -> int:
    c.add_evidence("zero", "/dev/zero")
    return 2


@attack("evidence path is a symlink to /dev/zero inside the folder")
def _(c: Case) -> int:
    (c.folder / "zero.dsse.json").symlink_to("/dev/zero")
    c.add_evidence("zero", "zero.dsse.json")
    return 2


@attack("evidence path is a FIFO that no one writes (would hang a read)")
def _(c: Case) -> int:
    os.mkfifo(c.folder / "fifo.dsse.json")
    c.add_evidence("fifo", "fifo.dsse.json")
    return 2


@attack("evidence path is a directory")
def _(c: Case) -> int:
    (c.folder / "dir.dsse.json").mkdir()
    c.add_evidence("dir", "dir.dsse.json")
    return 2


@attack("evidence path does not exist")
def _(c: Case) -> int:
    c.add_evidence("ghost", "ghost.dsse.json")
    return 2


@attack("evidence file larger than --max-evidence-bytes")
def _(c: Case) -> int:
    c.extra += ["--max-evidence-bytes", "1000"]
    return 2


@attack("evidence adds up to more than the total cap (one file named many times)")
def _(c: Case) -> int:
    size = len(c.envelope("eval-result"))
    c.extra += ["--max-evidence-bytes", str(size)]
    for i in range(17):
        c.add_evidence(f"copy-{i}", "eval-result.dsse.json")
    return 2


@attack("request larger than --max-request-bytes")
def _(c: Case) -> int:
    c.extra += ["--max-request-bytes", "512"]
    return 2


@attack("request of 2 MiB refused before parsing with the default cap")
def _(c: Case) -> int:
    c.doc["summary"] = "x" * (2 << 20)
    return 2


@attack("request file is a FIFO")
def _(c: Case) -> int:
    c.request.unlink()
    os.mkfifo(c.request)
    c.write = False
    return 2


@attack("model.path is absolute")
def _(c: Case) -> int:
    c.doc["model"]["path"] = str(c.world.candidate)
    return 2


@attack("model.path climbs out with ../")
def _(c: Case) -> int:
    c.doc["model"]["path"] = os.path.relpath(c.world.candidate, c.folder)
    return 2


@attack("model.path is a symlink to weights outside")
def _(c: Case) -> int:
    (c.folder / "linked-weights").symlink_to(c.world.candidate, target_is_directory=True)
    c.doc["model"]["path"] = "linked-weights"
    return 2


@attack("model.path names a file, not a folder")
def _(c: Case) -> int:
    c.doc["model"]["path"] = "eval-result.dsse.json"
    return 2


@attack("--evidence-root does not widen past itself")
def _(c: Case) -> int:
    c.extra += ["--evidence-root", str(c.folder)]
    c.add_evidence("key", os.path.relpath(_key_path(c), c.folder))
    return 2


# ... refused bytes are never kept; private keys are refused wherever they appear

@attack("a copy of the gate key placed beside the request as evidence")
def _(c: Case) -> int:
    shutil.copyfile(_key_path(c), c.folder / "key.dsse.json")
    c.add_evidence("key", "key.dsse.json")
    return 2


@attack("an OpenSSH private key beside the request as evidence")
def _(c: Case) -> int:
    (c.folder / "id.dsse.json").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----\n")
    c.add_evidence("id", "id.dsse.json")
    return 2


@attack("a private key base64-encoded as the payload of an envelope")
def _(c: Case) -> int:
    env = {"payloadType": "application/vnd.in-toto+json",
           "payload": base64.b64encode(b"xy" + _key_path(c).read_bytes()).decode(),
           "signatures": [{"keyid": "", "sig": "AAAA"}]}
    (c.folder / "wrapped.dsse.json").write_text(json.dumps(env))
    c.add_evidence("wrapped", "wrapped.dsse.json")
    return 2


@attack("a private key pasted into the request's summary")
def _(c: Case) -> int:
    c.doc["changes"] = [line for line in _key_path(c).read_text().splitlines()]
    return 2


@attack("a private key JSON-escaped into the request")
def _(c: Case) -> int:
    c.doc["summary"] = _key_path(c).read_text().replace("\n", " ")
    return 2


@attack("a plain-text file as evidence is denied and recorded by digest only")
def _(c: Case) -> int:
    (c.folder / "notes.dsse.json").write_text("CONFIDENTIAL-NOTES do not copy\n")
    c.add_evidence("notes", "notes.dsse.json")
    return 4


@attack("a JSON file that is not an envelope is denied and recorded by digest only")
def _(c: Case) -> int:
    (c.folder / "config.dsse.json").write_text(json.dumps({"db_password": "CONFIDENTIAL-NOTES"}))
    c.add_evidence("config", "config.dsse.json")
    return 4


@attack("binary bytes as evidence are denied and recorded by digest only")
def _(c: Case) -> int:
    (c.folder / "blob.dsse.json").write_bytes(b"\x00\xffCONFIDENTIAL-NOTES\x80" * 10)
    c.add_evidence("blob", "blob.dsse.json")
    return 4


# 2. What is promoted is what was signed ----------------------------------------------

@attack("model.name differs from the signed weights manifest's subject name")
def _(c: Case) -> int:
    c.doc["model"]["name"] = "fraud-scorer"
    return 1


@attack("model.name differs only in case from the signed name")
def _(c: Case) -> int:
    c.doc["model"]["name"] = MODEL.upper()
    return 1


@attack("an eval signed about the same weights under another model name")
def _(c: Case) -> int:
    sha = c.world.candidate_sha
    statement = make_statement("fraud-scorer", sha, "eval-result",
                               eval_predicate(c.world.baseline_sha, recent()))
    (c.folder / "eval-result.dsse.json").write_bytes(
        sign_envelope(statement, [c.world.key("eval-harness")]).to_json())
    return 1


@attack("a serving change to batch 16 approved on a measurement at batch 8")
def _(c: Case) -> int:
    c.doc["deployment"]["serving"] = {**SERVING, "batch_size": 16}
    return 1


@attack("a move to cuda on a cpu measurement")
def _(c: Case) -> int:
    c.doc["deployment"]["serving"] = {**SERVING, "device": "cuda"}
    return 1


@attack("a dtype change to float16 on a float32 measurement")
def _(c: Case) -> int:
    c.doc["deployment"]["serving"] = {**SERVING, "dtype": "float16"}
    return 1


@attack("an int8 quantization on an unquantized measurement")
def _(c: Case) -> int:
    c.doc["deployment"]["serving"] = {**SERVING, "quantization": "int8"}
    return 1


@attack("a runtime upgrade on the old runtime's measurement")
def _(c: Case) -> int:
    c.doc["deployment"]["serving"] = {**SERVING, "runtime_version": "2.14.0+cpu"}
    return 1


@attack("a request that does not say what serving config it deploys")
def _(c: Case) -> int:
    del c.doc["deployment"]["serving"]
    return 1


@attack("--at backdates a recorded decision")
def _(c: Case) -> int:
    c.extra += ["--at", "2026-01-01T00:00:00Z"]
    return 2


@attack("--packet without --signing-key")
def _(c: Case) -> int:
    c.with_key = False
    return 2


# 3. Strict input, clear errors ---------------------------------------------------------

def _raw(c: Case, text: str) -> None:
    c.raw = text.encode("utf-8", "surrogatepass")


def _json(c: Case) -> str:
    return json.dumps(c.doc)


@attack("duplicate top-level key: a reviewer reads the first model, json the last")
def _(c: Case) -> int:
    text = _json(c)
    other = json.dumps({**c.doc["model"], "name": "fraud-scorer"})
    _raw(c, text[:-1] + f', "model": {other}}}')
    return 2


@attack("duplicate nested key: model.version twice")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"version": "1.1.0"', '"version": "9.9.9", "version": "1.1.0"', 1))
    return 2


@attack("duplicate key in deployment: regions twice")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"regions": ["eu"]', '"regions": ["us"], "regions": ["eu"]', 1))
    return 2


@attack("NaN as a batch size")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"batch_size": 8', '"batch_size": NaN', 1))
    return 2


@attack("Infinity as a batch size")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"batch_size": 8', '"batch_size": Infinity', 1))
    return 2


@attack("-Infinity as a batch size")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"batch_size": 8', '"batch_size": -Infinity', 1))
    return 2


@attack("a float that overflows: 1e999")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"batch_size": 8', '"batch_size": 1e999', 1))
    return 2


@attack("an integer of 400 digits")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"batch_size": 8', '"batch_size": 1' + "0" * 400, 1))
    return 2


@attack("an integer past Python's 4300-digit limit")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"batch_size": 8', '"batch_size": 1' + "0" * 5000, 1))
    return 2


@attack("nesting 40 levels deep")
def _(c: Case) -> int:
    _raw(c, _json(c)[:-1] + ', "x": ' + "[" * 40 + "]" * 40 + "}")
    return 2


@attack("nesting 200,000 levels deep")
def _(c: Case) -> int:
    _raw(c, "[" * 200_000 + "]" * 200_000)
    return 2


@attack("a lone surrogate in the summary")
def _(c: Case) -> int:
    _raw(c, _json(c).replace('"summary": "test promotion"', '"summary": "test \\ud800 promotion"', 1))
    return 2


@attack("bytes that are not UTF-8")
def _(c: Case) -> int:
    c.raw = _json(c).encode().replace(b"test promotion", b"test \xff promotion")
    return 2


@attack("a UTF-8 byte-order mark before the JSON")
def _(c: Case) -> int:
    c.raw = b"\xef\xbb\xbf" + _json(c).encode()
    return 2


@attack("an empty request file")
def _(c: Case) -> int:
    c.raw = b""
    return 2


@attack("a JSON array instead of a request")
def _(c: Case) -> int:
    c.raw = b"[]"
    return 2


@attack("an unknown top-level field")
def _(c: Case) -> int:
    c.doc["approved"] = True
    return 2


@attack("a newline in model.name forges an output line")
def _(c: Case) -> int:
    c.doc["model"]["name"] = MODEL + "\nAPPROVE: everything"
    return 2


@attack("a carriage return in the summary")
def _(c: Case) -> int:
    c.doc["summary"] = "fine\rAPPROVE"
    return 2


@attack("an ANSI escape in requested_by")
def _(c: Case) -> int:
    c.doc["requested_by"] = "\x1b[32mrelease-manager\x1b[0m"
    return 2


@attack("a C1 control (NEL) in the version")
def _(c: Case) -> int:
    c.doc["model"]["version"] = "1.1.0\u0085"
    return 2


@attack("a right-to-left override in the model name")
def _(c: Case) -> int:
    c.doc["model"]["name"] = "support-\u202etriage"
    return 2


@attack("a zero-width space in a region")
def _(c: Case) -> int:
    c.doc["deployment"]["regions"] = ["e\u200bu"]
    return 2


@attack("a zero-width joiner in a dataset name")
def _(c: Case) -> int:
    c.doc["training_data"][0]["dataset"] = "tickets\u200d_scrubbed"
    return 2


@attack("a BOM inside a change class")
def _(c: Case) -> int:
    c.doc["change_classes"] = ["\ufeffweights_retrain"]
    return 2


@attack("a newline inside a release-diff line")
def _(c: Case) -> int:
    c.doc["changes"] = ["one\ntwo"]
    return 2


@attack("a NUL in an evidence path")
def _(c: Case) -> int:
    c.doc["evidence"][0]["path"] = "weights-manifest.dsse.json\u0000.txt"
    return 2


@attack("a control character in an object key")
def _(c: Case) -> int:
    c.doc["model"]["name\t"] = "x"
    return 2


@attack("a repeated evidence ref")
def _(c: Case) -> int:
    c.add_evidence("eval-result", "eval-result.dsse.json")
    return 2


@attack("a weights digest that is not sha256 hex")
def _(c: Case) -> int:
    c.doc["model"]["weights_digest"] = "sha256:" + "G" * 64
    return 2


@attack("a batch size of zero")
def _(c: Case) -> int:
    c.doc["deployment"]["serving"]["batch_size"] = 0
    return 2


@attack("weights on disk that are not the promoted ones")
def _(c: Case) -> int:
    shutil.rmtree(c.folder / "weights")
    shutil.copytree(c.world.other, c.folder / "weights")
    return 4


@attack("an evidence envelope edited after signing")
def _(c: Case) -> int:
    env = json.loads(c.envelope("eval-result"))
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["layers"]["stress"]["metrics"]["accuracy"]["candidate"] = 0.99
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (c.folder / "eval-result.dsse.json").write_text(json.dumps(env))
    return 4


@attack("an envelope nested 200,000 levels deep")
def _(c: Case) -> int:
    (c.folder / "deep.dsse.json").write_text("[" * 200_000 + "]" * 200_000)
    c.add_evidence("deep", "deep.dsse.json")
    return 4


def test_the_suite_covers_at_least_sixty_attacks() -> None:
    assert len(ATTACKS) >= 60


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_hostile_request(name: str, case: Case) -> None:
    expected = ATTACKS[name](case)
    outcome = _bounded(run, case)
    assert_contained(case, outcome, expected)
    if "digest only" in name:  # the file's bytes are in neither the ledger nor the packet
        assert all(b"CONFIDENTIAL-NOTES" not in text for text in _written(outcome))
        assert "withheld" in outcome.out


def _bounded(fn: Callable[[Case], Outcome], case: Case, seconds: int = 60) -> Outcome:
    """Fail (rather than hang the suite) if the gate blocks."""
    def timeout(signum: int, frame: object) -> None:
        raise TimeoutError(f"the gate hung for {seconds} s")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        return fn(case)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
