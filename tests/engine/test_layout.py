"""The architecture, checked: the engine's rooms import one way (cli -> demo -> promote -> report
-> packet -> ops -> deploy -> ledger -> policy -> request -> evidence), no package has an import
cycle, and the public API is pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import slmgate.engine
import slmgate.evidence

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"slmgate.engine": ROOT / "engine", "slmgate.evidence": ROOT / "evidence",
            "slmgate.runtime": ROOT / "runtime"}

# A module may import from its own level and the levels below, never above.
LEVELS = {
    "slmgate.evidence": 0,
    "slmgate.engine._schemas": 1,
    "slmgate.engine.request": 2,
    "slmgate.engine.policy": 3,
    "slmgate.engine.ledger": 4,
    "slmgate.engine.deploy": 4.5,  # deployments: reads the ledger, below the packet
    "slmgate.engine.ops": 4.6,  # operations metrics: imported and verified for the ledger
    "slmgate.engine.packet": 5,
    "slmgate.engine.report": 5.5,  # the program report: the packet's pipeline over the records
    "slmgate.engine.promote": 6,
    "slmgate.engine.demo": 7,
    "slmgate.engine.cli": 8,
    "slmgate.engine": 9,  # the package's __init__: the public API over everything
}


def _module_name(path: Path) -> str:
    for package, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            return ".".join([package, *parts])
    raise AssertionError(path)


def _imports(path: Path) -> set[str]:
    """Every slmgate module ``path`` imports, at the top or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("slmgate")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("slmgate"):
                found.add(target)
    return found


def _level(module: str) -> int | None:
    best = None
    for prefix, level in LEVELS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[0])):
            best = (prefix, level)
    return best[1] if best else None


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGES[package].rglob("*.py")}


def test_the_engine_rooms_import_downward_only() -> None:
    upward = []
    for name, path in _modules("slmgate.engine").items():
        here = _level(name)
        for target in _imports(path):
            there = _level(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_evidence_and_runtime_never_import_the_engine() -> None:
    for package in ("slmgate.evidence", "slmgate.runtime"):
        for name, path in _modules(package).items():
            assert not any(t.startswith("slmgate.engine") for t in _imports(path)), name
    for name, path in _modules("slmgate.evidence").items():
        assert not any(t.startswith("slmgate.runtime") for t in _imports(path)), name


def _owner(target: str, known: set[str]) -> str | None:
    """The module a dotted import lands in (``a.b.c`` may be module ``a.b`` importing ``c``)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node):], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, [*stack, node])
            if found:
                return found
        done.add(node)
        return None

    for name in sorted(graph):
        found = visit(name, [])
        if found:
            return found
    return None


def test_no_package_has_an_import_cycle() -> None:
    for package in PACKAGES:
        modules = _modules(package)
        graph = {name: {o for t in _imports(path) if (o := _owner(t, set(modules))) and o != name
                        and not name.startswith(o + ".") and o != package}
                 for name, path in modules.items()}
        assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_each_room_says_its_job_and_what_it_may_import() -> None:
    for room in ("request", "policy", "ledger", "deploy", "ops", "packet", "report", "cli"):
        doc = ast.get_docstring(ast.parse((ROOT / "engine" / room / "__init__.py").read_text()))
        assert doc and ("May import" in doc or "may import" in doc), room


def test_the_public_api_is_pinned() -> None:
    assert slmgate.engine.__all__ == [
        "BundleInvalid", "CompiledPolicy", "Decision", "Ledger", "LedgerEntry", "PolicyBundle",
        "PromotionRequest", "PromotionResult", "approval_digest", "evaluate_promotion",
        "load_bundle", "load_request", "sign_decision_record",
    ]
    for name in slmgate.engine.__all__:
        assert getattr(slmgate.engine, name) is not None
    assert "verify_envelope" in slmgate.evidence.__all__


def test_every_public_name_of_the_engine_resolves() -> None:
    """``slmgate.engine`` imports its public names on first use; each must lead somewhere."""
    import slmgate.engine as engine

    assert sorted(engine.__all__) == sorted(engine._WHERE)
    for name in engine.__all__:
        assert getattr(engine, name).__name__ == name


def test_every_package_folder_is_declared_in_pyproject() -> None:
    """A wheel carries only the packages pyproject lists; the editable install hides a missing
    one (the deploy room was missing once)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    mapping = {folder: package for package, folder in config["package-dir"].items()}
    found = set()
    for top, package in mapping.items():
        for init in (root / top).rglob("__init__.py"):
            rel = init.parent.relative_to(root / top)
            found.add(".".join([package, *rel.parts]))
    assert found - declared == set(), f"not declared in pyproject.toml: {sorted(found - declared)}"
