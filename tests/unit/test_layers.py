"""The imports of idp/ point down (docs/architecture.md, "Layers").

Every module belongs to a layer; it may import its own layer and the ones below, never one
above, and no chain of imports may come back to where it started. Imports inside functions
count as much as those at the top: they still tie the modules together, they only hide it.
The graph is read from the source with ``ast``, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import idp

PACKAGE = Path(idp.__file__).resolve().parent

# Lowest first. A module belongs to the layer of its longest matching name; "idp" alone is
# idp/__init__.py (create_app), which wires every part together.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",  # settings, URL rules, the database engine, logs, metrics, headers, serving
        (
            "idp.config",
            "idp.urls",
            "idp.outbound",
            "idp.background",
            "idp.db",
            "idp.migrate",
            "idp.logs",
            "idp.metrics",
            "idp.limits",
            "idp.security",
            "idp.published",
            "idp.health",
            "idp.serve",
            "idp.gunicorn_conf",
            "idp.malloc",
        ),
    ),
    (
        "models",
        (
            "idp.models",
            "idp.migrations",
            "idp.audit",
            "idp.purge",
            "idp.cors",
            "idp.errors",
            "idp.mail",
        ),
    ),
    ("auth", ("idp.auth",)),  # sign-in, the browser session, users
    ("oauth", ("idp.oauth",)),  # the protocol, clients
    ("pages", ("idp.account", "idp.admin")),
    ("demo", ("idp.demo",)),
    ("app", ("idp",)),
    ("cli", ("idp.cli",)),
)

# Known upward imports still to be removed; they are left out of the cycle check too. Empty
# is the rule; an entry needs a comment that says why it is there and when it goes.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported(name: str, source: str, modules, is_package: bool = False) -> set[str]:
    """The modules of ``modules`` that ``source`` (module ``name``) imports, anywhere in it."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # "from package import module" imports the module; "from module import name"
            # imports that module.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(package)
    return {
        name: imported(name, path.read_text(), modules, path.name == "__init__.py")
        for name, path in modules.items()
    }


def layer_of(module: str) -> int | None:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "idp" and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank)
    return best[1] if best else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(module) is None or layer_of(target) is None:
                continue  # test_every_module_has_a_layer names it
            if layer_of(target) > layer_of(module) and (module, target) not in KNOWN_UPWARD:
                below, above = LAYERS[layer_of(module)][0], LAYERS[layer_of(target)][0]
                found.append(f"{module} ({below}) imports {target} ({above})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    graph = import_graph()
    assert "idp.oauth.routes" in graph and "idp.cli" in graph  # the walk found the package
    assert [m for m in graph if layer_of(m) is None] == []


def test_imports_point_down():
    assert upward_imports(import_graph()) == []


def test_no_import_cycles():
    graph = import_graph()
    for module, target in KNOWN_UPWARD:
        graph[module].discard(target)
    assert cycles(graph) == []


def test_known_upward_imports_still_exist():
    # An exception that no longer happens is deleted, so the list cannot hide a new one.
    graph = import_graph()
    assert [edge for edge in KNOWN_UPWARD if edge[1] not in graph.get(edge[0], ())] == []


def test_the_checks_see_imports_inside_functions_and_relative_ones():
    modules = {
        "idp",
        "idp.models",
        "idp.models.user",
        "idp.oauth",
        "idp.oauth.tokens",
        "idp.cli.users",
    }
    source = (
        "from .. import oauth\n"
        "def f():\n"
        "    from ..oauth.tokens import new_secret\n"
        "    import idp.cli.users\n"
    )
    found = imported("idp.models.user", source, modules)
    assert found == {"idp.oauth", "idp.oauth.tokens", "idp.cli.users"}
    graph = {"idp.models.user": {"idp.oauth.tokens"}, "idp.oauth.tokens": {"idp.models.user"}}
    assert upward_imports(graph) == ["idp.models.user (models) imports idp.oauth.tokens (oauth)"]
    assert cycles(graph) == [["idp.models.user", "idp.oauth.tokens"]]
