"""Mutation testing of the trust core and the promotion policy: ``make mutate``.

A small runner of our own (mutmut 3 does not find the tests through pyproject's package-dir
mapping, ``slmgate.evidence`` -> ``evidence/``). For each target it makes every mutant of one
operator change, runs the target's tests against it and counts the mutant *killed* when they
fail (or time out). It never touches the working tree: each worker mutates its own temporary
copy of the repository, which ``PYTHONPATH`` puts in front of the editable install.

Operators, Python (found with ``ast``, applied as text edits so line numbers stay put):
``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``and``/``or``, a dropped ``not`` (``not x``,
``not in``, ``is not``), ``raise`` -> ``pass``, ``return X`` -> ``return None``, numbers and
booleans changed, string defaults (function and field defaults, ``.get(k, default)``) changed.
Rego (line by line, outside strings and comments): the same comparison swaps, a dropped
``not``, ``true``/``false`` swapped, and each body line deleted (a statement inside a rule
body, or a one-line ``... if cond`` rule).

Survivors that cannot change behaviour are listed, each with a one-line reason, in
``equivalent.yaml`` beside this file; they are matched by target, the line's code and the
mutation, so the list survives edits elsewhere in the file (an entry with ``line`` too matches
that line only: for code that recurs verbatim where the mutant is not equivalent). The score of
a target is
killed / (mutants - listed equivalents); the run fails when a target is under ``--goal`` or a
survivor is not listed.

    python tests/mutation/mutate.py [--target evidence/_trust.py] [--jobs 2] [--list]

Not collected by pytest (no ``test_`` prefix); run by ``make mutate``, not by ``make test``.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EQUIVALENTS = Path(__file__).with_name("equivalent.yaml")
PACKAGES = ("engine", "evidence", "runtime", "policies", "templates")  # slmgate.<name> -> <name>/
_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "out", "__pycache__", "*.egg-info",
                                      ".pytest_cache", ".mypy_cache", ".ruff_cache")
# Hypothesis's pytest plugin costs a second or more of imports per run; the tests that use
# hypothesis import it themselves and run the same without the plugin.
_PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest", "--no-header", "-o", "addopts=", "--tb=no"]
_CLI = [sys.executable, "-m", "slmgate.engine.cli"]


@dataclass(frozen=True)
class Target:
    """A file to mutate and the commands whose failure kills a mutant (``{root}``: the copy)."""

    path: str
    commands: tuple[tuple[str, ...], ...]
    # Copies of the mutated file to keep in step (the scaffolded policy repository's Rego).
    mirrors: tuple[str, ...] = ()


def _pytest(*files: str) -> tuple[str, ...]:
    return (*_PYTEST, *files)


TARGETS: tuple[Target, ...] = (
    Target("evidence/_trust.py", (_pytest(
        "tests/evidence/test_trust_windows.py", "tests/evidence/test_trust.py"),)),
    Target("evidence/_dsse.py", (_pytest(
        "tests/evidence/test_dsse.py", "tests/evidence/test_tamper_suite.py"),)),
    Target("evidence/_statement.py", (_pytest(
        "tests/evidence/test_statement.py", "tests/evidence/test_trust.py"),)),
    Target("evidence/_keys.py", (_pytest(
        "tests/evidence/test_keys.py", "tests/evidence/test_dsse.py"),)),
    Target("evidence/_manifest.py", (_pytest("tests/evidence/test_manifest.py"),)),
    Target("policies/rego/promotion.rego", (
        # `slmgate policy check`, stopping at the first failing decision case; the policy's own
        # tests; then the decision cases on regopy too, the slowest (regorus's quirks can hide
        # a mutant: test_engine_parity.py)
        (sys.executable, "tests/mutation/policy_check_fast.py", "{root}/_repo"),
        _pytest("tests/engine/policy/test_promotion_policy.py"),
        (sys.executable, "tests/mutation/policy_check_fast.py", "{root}/_repo", "regopy"),
    ), mirrors=("_repo/rego/promotion.rego",)),
)


@dataclass(frozen=True)
class Mutant:
    target: str
    line: int  # 1-based
    code: str  # the line's code, stripped: the key of an equivalent (with target and mutation)
    mutation: str  # e.g. "< -> <=", "raise -> pass"
    start: int  # character offsets of the replaced text in the source
    end: int
    replacement: str

    def apply(self, source: str) -> str:
        return source[: self.start] + self.replacement + source[self.end:]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.target, self.code, self.mutation

    def describe(self) -> str:
        return f"{self.target}:{self.line}: {self.mutation}    {self.code}"


# ------------------------------------------------------------------ Python operators

_SWAPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="),
    ast.NotIn: ("not in", "in"), ast.IsNot: ("is not", "is"),
}


class _Offsets:
    """(line, column) of ``ast`` (columns in UTF-8 bytes) to character offsets in the source."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for text in self.lines:
            self.starts.append(self.starts[-1] + len(text))

    def at(self, line: int, col_bytes: int) -> int:
        text = self.lines[line - 1]
        return self.starts[line - 1] + len(text.encode()[:col_bytes].decode())

    def start(self, node: ast.AST) -> int:
        return self.at(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.at(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.lines)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.starts[mid + 1] <= offset:
                lo = mid + 1
            else:
                hi = mid
        return lo + 1


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            ids.add(id(body[0].value))
    return ids


def _changed_constant(value: object, text: str) -> str | None:
    if isinstance(value, bool):
        return repr(not value)
    if isinstance(value, int):
        changed = 1 if value == 0 else 0 if value == 1 else value + 1
        return oct(changed) if text.startswith("0o") else hex(changed) if text.startswith("0x") \
            else str(changed)
    if isinstance(value, float):
        return repr(value + 1.0)
    return None


def _flag_nodes(tree: ast.AST) -> set[int]:
    """Constants that configure a call rather than decide anything: every argument of a
    decorator, and boolean keyword arguments (``field(repr=False)``, ``mkdir(parents=True)``)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            ids |= {id(n) for d in node.decorator_list for n in ast.walk(d)}
        elif isinstance(node, ast.Call):
            ids |= {id(k.value) for k in node.keywords
                    if isinstance(k.value, ast.Constant) and isinstance(k.value.value, bool)}
    return ids


def _default_nodes(tree: ast.AST) -> set[int]:
    """String constants that are defaults: of a function's parameters, of a class-level field,
    or the second argument of ``.get(key, default)``."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            ids |= {id(d) for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None}
        elif isinstance(node, ast.ClassDef):
            ids |= {id(s.value) for s in node.body if isinstance(s, ast.AnnAssign) and s.value}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get" and len(node.args) == 2:
            ids.add(id(node.args[1]))
    return ids


def python_mutants(target: str, source: str) -> list[Mutant]:
    tree = ast.parse(source)
    off = _Offsets(source)
    docstrings, defaults, flags = _docstrings(tree), _default_nodes(tree), _flag_nodes(tree)
    in_fstring = {id(n) for j in ast.walk(tree) if isinstance(j, ast.JoinedStr) for n in ast.walk(j)}
    found: list[tuple[int, int, str, str]] = []  # start, end, replacement, mutation

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                swap = _SWAPS.get(type(op))
                if swap:
                    a, b = off.end(left), off.start(right)
                    m = re.search(r"\s*(" + re.escape(swap[0]).replace(r"\ ", r"\s+") + r")\s*",
                                  source[a:b])
                    if m:
                        found.append((a + m.start(1), a + m.end(1), swap[1], f"{swap[0]} -> {swap[1]}"))
                left = right
        elif isinstance(node, ast.BoolOp):
            word, other = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            for left, right in zip(node.values, node.values[1:], strict=False):
                a, b = off.end(left), off.start(right)
                m = re.search(rf"\b{word}\b", source[a:b])
                if m:
                    found.append((a + m.start(), a + m.end(), other, f"{word} -> {other}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            a = off.start(node)
            m = re.match(r"not\s*", source[a:])
            if m:
                found.append((a, a + m.end(), "", "not x -> x"))
        elif isinstance(node, ast.Raise):
            found.append((off.start(node), off.end(node), "pass", "raise -> pass"))
        elif isinstance(node, ast.Return) and node.value is not None \
                and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            found.append((off.start(node.value), off.end(node.value), "None", "return X -> return None"))
        elif isinstance(node, ast.Constant) and id(node) not in docstrings | in_fstring | flags:
            changed = _changed_constant(node.value, source[off.start(node):off.end(node)])
            if changed is None and isinstance(node.value, str) and id(node) in defaults:
                changed = repr("mutant" if node.value == "" else "")
            if changed is not None:
                found.append((off.start(node), off.end(node), changed,
                              f"{source[off.start(node):off.end(node)]} -> {changed}"))

    mutants = []
    seen: dict[tuple[int, str], int] = {}
    for start, end, replacement, mutation in sorted(set(found)):
        line = off.line_of(start)
        nth = seen[line, mutation] = seen.get((line, mutation), 0) + 1
        named = mutation if nth == 1 else f"{mutation} [{nth}]"  # the nth such change on the line
        mutant = Mutant(target, line, off.lines[line - 1].strip(), named, start, end, replacement)
        try:
            compile(mutant.apply(source), target, "exec")
        except SyntaxError:
            continue
        mutants.append(mutant)
    return mutants


# ------------------------------------------------------------------ Rego operators

_REGO_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_REGO_SWAPS = (("<=", "<"), (">=", ">"), ("==", "!="), ("!=", "=="), ("<", "<="), (">", ">="))
_REGO_TOKENS = re.compile(r"<=|>=|==|!=|<|>|\bnot\s+|\btrue\b|\bfalse\b")


def _code_spans(line: str) -> Iterator[tuple[int, int]]:
    """The parts of a Rego line outside string literals and the trailing comment."""
    pos = 0
    for m in _REGO_STRING.finditer(line):
        yield from _until_comment(line, pos, m.start())
        if "#" in line[pos:m.start()]:
            return
        pos = m.end()
    yield from _until_comment(line, pos, len(line))


def _until_comment(line: str, a: int, b: int) -> Iterator[tuple[int, int]]:
    hash_at = line.find("#", a, b)
    yield (a, b if hash_at < 0 else hash_at)


def _balanced(text: str) -> bool:
    return all(text.count(o) == text.count(c) for o, c in ("()", "[]", "{}"))


def rego_mutants(target: str, source: str) -> list[Mutant]:
    mutants = []
    starts = [0]
    lines = source.splitlines(keepends=True)
    for text in lines:
        starts.append(starts[-1] + len(text))
    depth = 0  # brace depth at the start of each line (strings hold no braces in this policy)
    for n, text in enumerate(lines, 1):
        base, code = starts[n - 1], text.strip()
        plain = "".join(text[a:b] for a, b in _code_spans(text))
        if code and not code.startswith("#"):
            for a, b in _code_spans(text):
                for m in _REGO_TOKENS.finditer(text, a, b):
                    tok = m.group()
                    if tok.startswith("not"):
                        swap, mutation = "", "not x -> x"
                    elif tok in ("true", "false"):
                        swap = "false" if tok == "true" else "true"
                        mutation = f"{tok} -> {swap}"
                    elif tok == ">" and text[m.start() - 1:m.start()] == "-":
                        continue  # "->" inside a message would be in a string; never an operator
                    else:
                        swap = dict(_REGO_SWAPS)[tok]
                        mutation = f"{tok} -> {swap}"
                    nth = sum(1 for x in mutants if x.line == n and x.mutation.split(" [")[0] == mutation) + 1
                    if nth > 1:
                        mutation = f"{mutation} [{nth}]"
                    mutants.append(Mutant(target, n, code, mutation, base + m.start(), base + m.end(), swap))
            body_line = depth == 1 and _balanced(plain) and code not in ("}", "{") \
                and not code.endswith("{") and not code.startswith("}")
            one_line_rule = depth == 0 and " if " in plain and not plain.rstrip().endswith("{") \
                and _balanced(plain)
            if body_line or one_line_rule:
                end = base + len(text.rstrip("\n"))
                mutants.append(Mutant(target, n, code, "delete line", base, end, ""))
        depth += plain.count("{") - plain.count("}")
    return mutants


def mutants_of(target: Target) -> list[Mutant]:
    source = (REPO / target.path).read_text()
    if target.path.endswith(".rego"):
        return rego_mutants(target.path, source)
    return python_mutants(target.path, source)


# ------------------------------------------------------------------ running


@dataclass
class Workspace:
    """One worker's copy of the repository, importable as ``slmgate`` ahead of the install."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, parent: Path, name: str) -> Workspace:
        root = parent / name
        shutil.copytree(REPO, root, ignore=_COPY_IGNORE, symlinks=True)
        shim = root / "_import" / "slmgate"
        shim.mkdir(parents=True)
        for pkg in PACKAGES:
            (shim / pkg).symlink_to(root / pkg, target_is_directory=True)
        env = {**os.environ, "PYTHONPATH": f"{root / '_import'}{os.pathsep}{root}",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        ws = cls(root, env)
        probe = subprocess.run(
            [sys.executable, "-c", "import slmgate.evidence, slmgate.policies, slmgate.engine;"
             "print(slmgate.evidence.__file__, slmgate.policies.__file__)"],
            cwd=root, env=env, capture_output=True, text=True, check=True)
        if any(not Path(p).resolve().is_relative_to(root.resolve()) for p in probe.stdout.split()):
            raise SystemExit(f"mutate: the copy is not what gets imported ({probe.stdout.strip()})")
        subprocess.run([*_CLI, "init", str(root / "_repo"), "--secrets", str(root / "_secrets")],
                       cwd=root, env=env, capture_output=True, check=True)
        return ws

    def run(self, target: Target, source: str, timeout: float) -> tuple[bool, str]:
        """Run the target's commands with ``source`` in place; True when they all pass."""
        paths = [self.root / target.path, *(self.root / m for m in target.mirrors)]
        originals = [p.read_text() for p in paths]
        try:
            for p in paths:
                p.write_text(source)
            for command in target.commands:
                argv = [part.replace("{root}", str(self.root)) for part in command]
                try:
                    done = subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True,
                                          text=True, timeout=timeout)
                except subprocess.TimeoutExpired:
                    return False, "timeout"
                if done.returncode != 0:
                    tail = (done.stdout + done.stderr).strip().splitlines()
                    return False, tail[-1] if tail else f"exit {done.returncode}"
            return True, ""
        finally:
            for p, text in zip(paths, originals, strict=True):
                p.write_text(text)


def load_equivalents() -> dict[tuple[str | int, ...], str]:
    """(target, code, mutation) -> reason; with ``line`` given, (target, code, mutation, line):
    for code that recurs verbatim on lines where the mutant is not equivalent."""
    entries = yaml.safe_load(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else None
    entries = entries or []
    return {(e["target"], e["code"].strip(), e["mutation"], *([e["line"]] if "line" in e else [])):
            e["reason"] for e in entries}


@dataclass
class Score:
    target: str
    mutants: int = 0
    killed: int = 0
    equivalent: list[Mutant] = field(default_factory=list)
    survivors: list[Mutant] = field(default_factory=list)
    killed_equivalents: list[Mutant] = field(default_factory=list)
    timeouts: list[Mutant] = field(default_factory=list)  # counted as killed; see --timeout

    @property
    def score(self) -> float:
        judged = self.mutants - len(self.equivalent)
        return 100.0 * self.killed / judged if judged else 100.0

    @property
    def raw(self) -> float:
        return 100.0 * self.killed / self.mutants if self.mutants else 100.0


def run_target(target: Target, workspaces: Sequence[Workspace], timeout: float,
               equivalents: dict[tuple[str | int, ...], str], lines: Sequence[int] = ()) -> Score:
    mutants = [m for m in mutants_of(target) if not lines or m.line in lines]
    source = (REPO / target.path).read_text()
    ok, why = workspaces[0].run(target, source, timeout * 3)
    if not ok:
        raise SystemExit(f"mutate: the tests of {target.path} fail without any mutation: {why}")
    score = Score(target.path, len(mutants))
    free = list(workspaces)
    done: list[Mutant] = []
    lock = threading.Lock()
    started = time.monotonic()

    def one(mutant: Mutant) -> None:
        with lock:
            ws = free.pop()
        try:
            survived, why = ws.run(target, mutant.apply(source), timeout)
        finally:
            with lock:
                free.append(ws)
        with lock:
            done.append(mutant)
            if len(done) % 10 == 0:
                print(f"  ... {len(done)}/{len(mutants)}", flush=True)
            listed = mutant.key in equivalents or (*mutant.key, mutant.line) in equivalents
            if survived and listed:
                score.equivalent.append(mutant)
            elif survived:
                score.survivors.append(mutant)
                print(f"  SURVIVED {mutant.describe()}", flush=True)
            else:
                score.killed += 1
                if why == "timeout":  # an endless loop, or a machine too busy for --timeout
                    score.timeouts.append(mutant)
                    print(f"  TIMED OUT (counted as killed) {mutant.describe()}", flush=True)
                if listed:
                    score.killed_equivalents.append(mutant)

    with ThreadPoolExecutor(max_workers=len(workspaces)) as pool:
        list(pool.map(one, mutants))
    print(f"  {target.path}: {score.killed}/{score.mutants} killed ({len(score.timeouts)} by timeout), "
          f"{len(score.equivalent)} equivalent, {len(score.survivors)} surviving "
          f"({time.monotonic() - started:.0f} s)", flush=True)
    return score


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--target", action="append", help="a target path (repeatable); default: all")
    parser.add_argument("--jobs", type=int, default=1, help="workers, each with its own copy")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command per mutant")
    parser.add_argument("--goal", type=float, default=95.0, help="minimum score per target, percent")
    parser.add_argument("--line", type=int, action="append",
                        help="only the mutants on this line (repeatable), to recheck survivors")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the temporary copies are removed
    chosen = [t for t in TARGETS if not args.target or t.path in args.target]
    if args.target and len(chosen) != len(set(args.target)):
        parser.error(f"unknown target; known: {', '.join(t.path for t in TARGETS)}")
    if args.list:
        for t in chosen:
            for m in mutants_of(t):
                if not args.line or m.line in args.line:
                    print(m.describe())
        return 0
    equivalents = load_equivalents()
    scores = []
    with tempfile.TemporaryDirectory(prefix="slmgate-mutate-") as tmp:
        workspaces = [Workspace.make(Path(tmp), f"w{i}") for i in range(max(1, args.jobs))]
        for target in chosen:
            print(f"==> {target.path}", flush=True)
            scores.append(run_target(target, workspaces, args.timeout, equivalents, args.line or ()))
    failed = False
    print("\n| target | mutants | killed | of which timed out | equivalent | surviving "
          "| score (killed / non-equivalent) |")
    print("|---|---|---|---|---|---|---|")
    for s in scores:
        print(f"| {s.target} | {s.mutants} | {s.killed} | {len(s.timeouts)} | {len(s.equivalent)} "
              f"| {len(s.survivors)} "
              f"| {s.score:.1f} % |")
        failed |= s.score < args.goal or bool(s.survivors)
    for s in scores:
        for m in s.survivors:
            print(f"not listed as equivalent: {m.describe()}")
        for m in s.killed_equivalents:
            how = " by timeout: recheck it with --line on a quiet machine" if m in s.timeouts else ""
            print(f"listed as equivalent but killed{how} (remove it from {EQUIVALENTS.name}): "
                  f"{m.describe()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
