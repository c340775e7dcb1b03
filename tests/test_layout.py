"""The package's layers, read from its source: every import (function-level ones included) between
initopt's modules, checked for cycles and for imports that point up the layers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "initopt"

# Bottom to top. A module may import its own layer's modules and those of the layers below.
LAYERS = [
    ("initopt.errors",),
    # the process (JAX settings, BLAS, exit), the one module that writes files, a run's lifecycle
    ("initopt.runtime", "initopt.output.io", "initopt.output.rundir"),
    ("initopt.config",),  # typed once at the edge; the names in it are checked by the registries above
    ("initopt.data", "initopt.nn", "initopt.optim"),
    ("initopt.engine",),
    ("initopt.studies",),
    ("initopt.output",),
    ("initopt.commands",),  # each command's library function: config in, run directory, result out
    ("initopt.cli", "initopt.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The initopt modules that ``path`` imports anywhere in it (``from a import b`` names the
    module ``a.b`` where that is one, else ``a``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("initopt"):
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found & known


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names the module (``initopt.output.io`` is below the
    rest of ``initopt.output``); the package's own ``__init__`` is outside the layers."""
    best = (-1, -1)
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                best = max(best, (len(prefix), i))
    assert best[1] >= 0, f"{module} is in no layer: add its package to LAYERS"
    return best[1]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_point_down_the_layers():
    upward = [f"{m} imports {d}" for m, deps in graph().items() if m != "initopt" for d in deps
              if layer_of(d) > layer_of(m)]
    assert not upward, upward


def test_one_module_imports_matplotlib():
    importers = sorted(m for m, p in modules().items() if "matplotlib" in {
        (n.module or "").split(".")[0] for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom)
    } | {a.name.split(".")[0] for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Import)
         for a in n.names})
    assert importers == ["initopt.output.plots"]


# The training engine in the order a run flows; each module calls only those before it. The
# helpers beside the flow (instruments, intervals, budget, distributed) import none of it.
ENGINE_FLOW = ["plan", "placement", "steps", "loop", "runner"]
ENGINE_HELPERS = ["budget", "distributed", "instruments", "intervals"]


def test_the_engine_reads_in_the_order_a_run_flows():
    engine = {m.rsplit(".", 1)[1]: deps for m, deps in graph().items() if m.startswith("initopt.engine.")}
    assert sorted(engine) == sorted(ENGINE_FLOW + ENGINE_HELPERS), "a new engine module: place it in the flow"
    for i, name in enumerate(ENGINE_FLOW + ENGINE_HELPERS):
        allowed = set(ENGINE_FLOW[:i]) if name in ENGINE_FLOW else set()
        used = {d.rsplit(".", 1)[1] for d in engine[name] if d.startswith("initopt.engine.")} - set(ENGINE_HELPERS)
        assert used <= allowed, f"engine/{name}.py reaches {sorted(used - allowed)}, not before it in the flow"


def test_functions_do_one_job_in_at_most_fifty_lines():
    long = sorted(f"{path.relative_to(PACKAGE.parent)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
                  for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50)
    assert not long, long


def test_the_command_line_only_parses_and_calls():
    assert len((PACKAGE / "cli.py").read_text().splitlines()) <= 300
    assert len((PACKAGE.parent / "README.md").read_text().splitlines()) <= 450
