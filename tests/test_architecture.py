"""The package's shape: no import cycles, LiteLLM internals behind one leaf adapter, the entry
module on top. Read from the source (every import, function-level ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness import REPO_ROOT

PACKAGE = REPO_ROOT / "proxy_ext"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    targets: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_litellm_adapter_is_a_leaf():
    assert _graph()["proxy_ext.litellm_adapter"] == set()


def test_only_the_adapter_touches_litellm_proxy_internals():
    offenders = []
    for name, path in _modules().items():
        if name == "proxy_ext.litellm_adapter":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(n.startswith(("litellm.proxy", "litellm.litellm_core_utils", "litellm.router_utils", "litellm.integrations")) for n in names):
                offenders.append(name)
    assert not offenders, f"LiteLLM internals imported outside proxy_ext.litellm_adapter: {sorted(set(offenders))}"


def test_nothing_imports_the_entry_module():
    importers = [name for name, targets in _graph().items() if "proxy_ext.glue" in targets and name != "proxy_ext"]
    assert not importers, f"the entry module is imported by {importers}"
