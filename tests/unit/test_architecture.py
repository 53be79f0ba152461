"""The layering rules of docs/concepts/architecture.md, checked on the source itself.

Imports are read with ``ast`` from every module of the package, function-level ones included;
imports under ``if TYPE_CHECKING:`` are left out, since they never run.
"""

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from testkit import ROOT

PACKAGE = ROOT / "blackbox_sync"

# What each layer may import from the package (besides itself and the root utilities below).
UTILITIES = {"blackbox_sync", "blackbox_sync._version", "blackbox_sync.errors"}
UTILITIES |= {"blackbox_sync.redact", "blackbox_sync.urls", "blackbox_sync.settings"}
BELOW: Dict[str, Set[str]] = {
    "protocol": set(),
    "transport": {"protocol"},
    "conversation": {"protocol", "transport"},
    "rest": {"protocol", "transport", "conversation"},  # Client.conversation() opens one
    "voice": {"protocol", "transport", "conversation"},
    "display": {"protocol", "transport", "conversation"},
}
"""The layers below each one; the applications (cli, qa, testing, contrib) may use them all."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def runtime_imports(tree: ast.AST) -> Iterator[ast.AST]:
    """Every import statement that can run (those under ``if TYPE_CHECKING:`` skipped)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for other in node.orelse:
                yield from runtime_imports(other)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from runtime_imports(node)


def imported(name: str, path: Path) -> Set[str]:
    """The package modules ``name`` imports at run time."""
    found: Set[str] = set()
    for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        # `from pkg import submodule` runs pkg's __init__ as any import of a submodule does (an
        # implicit parent import, not counted); `from pkg import name` really imports pkg.
        submodules = {f"{base}.{alias.name}" for alias in node.names} & set(MODULES)
        found |= submodules
        if len(submodules) < len(node.names):
            found.add(base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles() -> List[List[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return groups


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def is_package_init(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def test_no_import_cycles() -> None:
    # The root package imports its public names from every layer; a module importing the root
    # (`import blackbox_sync as bb`) would close a cycle through it, so that is checked too.
    assert cycles() == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    offences: List[Tuple[str, str]] = []
    for name, targets in GRAPH.items():
        layer = layer_of(name)
        if layer not in BELOW:
            continue
        allowed = BELOW[layer] | {layer}
        for target in targets:
            if target in UTILITIES:
                continue
            if layer_of(target) not in allowed:
                offences.append((name, target))
    assert sorted(offences) == []


def test_no_module_imports_another_packages_private_module() -> None:
    offences = []
    for name, targets in GRAPH.items():
        for target in targets:
            owner, _, leaf = target.rpartition(".")
            private = leaf.startswith("_") and not leaf.startswith("__")
            if private and not (name == owner or name.startswith(owner + ".")):
                offences.append((name, target))
    assert offences == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("blackbox_sync.")))
def test_every_module_says_what_it_is_for(name: str) -> None:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{name} has no module docstring"


def foreign_private_uses(path: Path) -> List[str]:
    """``other._name`` uses in ``path`` whose ``_name`` the module does not define itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            own.add(node.value)  # __slots__ entries
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in own or node.attr in PUBLIC_BY_CONVENTION:
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        uses.append(f"{ast.unparse(node)} (line {node.lineno})")
    return uses


PUBLIC_BY_CONVENTION = {"_replace", "_asdict", "_fields", "_make"}
"""namedtuple's public methods, underscored to stay out of the field names."""

ADAPTERS = {"blackbox_sync.transport.wsclient"}
"""The one module allowed to reach into websocket-client's internals."""


@pytest.mark.parametrize("name", sorted(set(MODULES) - ADAPTERS))
def test_no_code_uses_another_modules_private_names(name: str) -> None:
    assert foreign_private_uses(MODULES[name]) == []
