"""Every service follows the floor plan of docs/CONVENTIONS.md: the same modules for the same
jobs, no file in ``src/`` over 300 lines, no import cycle between a service's modules.

Static: the sources are parsed, nothing is imported. An import inside a function (an event
handler reaching ``services``, which publishes through ``events``) runs when it is called, not
when the module loads, and is not an edge here; every module-level import is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT, SERVICES

MAX_LINES = 300
# The jobs every service has (a module or a package of that name); ``adapters`` where the service
# talks to the outside or runs work beside requests, ``fhir`` where it serves FHIR resources
# (docs/fhir.md).
MODULES = (
    "domain",
    "services",
    "queries",
    "events",
    "api",
    "models",
    "schemas",
    "errors",
    "config",
    "main",
    "cli",
)
OPTIONAL = ("adapters", "fhir")


def package_of(service: str) -> Path:
    return ROOT / f"{service}-service" / "src" / service


def modules(service: str) -> dict[str, Path]:
    """Dotted module name → file, for every module of the service's package."""
    package = package_of(service)
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The service's own modules that ``name`` imports when it loads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported: set[str] = set()
    for node in tree.body:  # module level only
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                imported.add(target)
    return imported


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the list of modules around it), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is how a package names them.
            if other.startswith(node + "."):
                continue
            if state.get(other) == 1:
                return stack[stack.index(other) :] + [other]
            if other not in state and (found := visit(other)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_module_for_each_job(service):
    package = package_of(service)
    missing = [m for m in MODULES if not (package / f"{m}.py").is_file() and not (package / m).is_dir()]
    assert missing == [], f"{service} lacks {missing} (docs/CONVENTIONS.md, the floor plan)"
    extra = sorted(
        path.stem if path.is_file() else path.name
        for path in package.iterdir()
        if path.name not in {"__init__.py", "__pycache__"}
        and (path.suffix == ".py" or path.is_dir())
        and (path.stem if path.is_file() else path.name) not in {*MODULES, *OPTIONAL}
    )
    assert extra == [], f"{service} has modules outside the floor plan: {extra}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_source_file_is_longer_than_300_lines(service):
    long = {
        str(path.relative_to(ROOT)): n
        for path in package_of(service).rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by job (docs/CONVENTIONS.md): {long}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_import_cycle_between_a_services_modules(service):
    found = modules(service)
    graph = {name: module_level_imports(name, path, set(found)) for name, path in found.items()}
    assert cycle_in(graph) is None, f"import cycle: {' → '.join(cycle_in(graph) or [])}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None
