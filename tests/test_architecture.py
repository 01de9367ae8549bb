"""The package's shape: no import cycles, LiteLLM internals behind one leaf adapter, the entry
module on top. Read from the source (every import, function-level ones included)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.harness import REPO_ROOT

PACKAGE = REPO_ROOT / "proxy_ext"


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


@functools.cache
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
    for node in ast.walk(_parse(path)):
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


ADAPTER = "proxy_ext.litellm_adapter"


def _in_adapter(name: str) -> bool:
    return name == ADAPTER or name.startswith(ADAPTER + ".")


def test_the_litellm_adapter_is_a_leaf():
    graph = _graph()
    adapter = [name for name in graph if _in_adapter(name)]
    assert ADAPTER in adapter
    outside = {name: sorted(t for t in graph[name] if not _in_adapter(t)) for name in adapter}
    assert not any(outside.values()), f"the adapter imports modules of ours: {outside}"


def test_only_the_adapter_touches_litellm_proxy_internals():
    offenders = []
    for name, path in _modules().items():
        if _in_adapter(name):
            continue
        for node in ast.walk(_parse(path)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(n.startswith(("litellm.proxy", "litellm.litellm_core_utils", "litellm.router_utils", "litellm.integrations")) for n in names):
                offenders.append(name)
    assert not offenders, f"LiteLLM internals imported outside proxy_ext.litellm_adapter: {sorted(set(offenders))}"


def test_nothing_imports_the_entry_module():
    importers = [name for name, targets in _graph().items() if "proxy_ext.glue" in targets and name != "proxy_ext"]
    assert not importers, f"the entry module is imported by {importers}"


# ------------------------------------------------------------------------------------- size limits

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body after its docstring (nested functions count in their parent)."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return (node.end_lineno or body[-1].lineno) - body[0].lineno + 1


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them): {long}"


def test_no_function_is_over_the_line_limit():
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(_parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n := _body_lines(node)) > MAX_FUNCTION_LINES:
                long[f"{name}:{node.lineno} {node.name}"] = n
    assert not long, f"functions with bodies over {MAX_FUNCTION_LINES} lines (split them): {long}"


def test_the_size_limits_measure_what_they_say():
    tree = ast.parse('def f():\n    """doc."""\n    a = 1\n\n    return a\n\n\nasync def g(): return 2\n')
    f, g = tree.body
    assert (_body_lines(f), _body_lines(g)) == (3, 1)


# ------------------------------------------------------------------------------------------ __all__


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (definitions, assignments, imports, also under if/try)."""
    names: set[str] = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.If, ast.Try)):
            nodes += [*node.body, *node.orelse, *getattr(node, "finalbody", []), *(s for h in getattr(node, "handlers", []) for s in h.body)]
    return names


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(node.value))  # type: ignore[union-attr, arg-type]
    return None


def _public_modules() -> dict[str, Path]:
    return {name: path for name, path in _modules().items() if not any(part.startswith("_") for part in name.split("."))}


def test_every_public_module_declares_all_with_names_that_exist():
    problems = []
    modules = _modules()
    for name, path in _public_modules().items():
        tree = _parse(path)
        declared = _declared_all(tree)
        if declared is None:
            problems.append(f"{name}: no __all__")
            continue
        if len(set(declared)) != len(declared):
            problems.append(f"{name}: __all__ lists a name twice")
        bound = _top_level_names(tree)
        missing = [n for n in declared if n not in bound and f"{name}.{n}" not in modules]
        if missing:
            problems.append(f"{name}: __all__ names what the module does not define: {missing}")
    assert not problems, "; ".join(problems)


def test_names_other_modules_import_are_in_all():
    """What one module of the package imports from another (a public name defined there) is part
    of that module's declared interface."""
    modules = _modules()
    public = _public_modules()
    trees = {name: _parse(path) for name, path in modules.items()}
    problems = set()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(trees[name]):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base not in public:
                continue
            defined = {n.name for n in trees[base].body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            declared = _declared_all(trees[base]) or []
            for alias in node.names:
                if alias.name in defined and not alias.name.startswith("_") and alias.name not in declared:
                    problems.add(f"{base}.{alias.name} (imported by {name})")
    assert not problems, f"imported from another module but missing from its __all__: {sorted(problems)}"
