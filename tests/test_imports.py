"""Every module of ``csi`` imports on its own, no two modules import each other (directly or
round a longer circle), and no package imports one on a floor above it — counting the
imports inside functions too."""
import ast
import subprocess
import sys

from tests.helpers import REPO


# The floors, bottom first: a module may import its own package and the floors below it.
# csi's packages, then the sibling packages built on csi, then the command-line tools.
FLOORS = [
    "csi.registry", "csi.utils", "csi.io", "csi.env", "csi.config",
    "csi.features", "csi.losses", "csi.chunking", "csi.models", "csi.scoring", "csi.baselines",
    "csi.data", "csi.modeldir", "csi.embed", "csi.align", "csi.index", "csi.eval", "csi.train",
    "csi.cli", "csi.hear", "csi",
    "synthcovers", "audiofp", "jobs", "tools",
]


def floor_of(module: str) -> int:
    """The floor of a module: that of the longest FLOORS entry it is in."""
    best = max((f for f in FLOORS if module == f or module.startswith(f + ".")), key=len)
    return FLOORS.index(best)


def csi_modules(roots: tuple[str, ...] = ("csi",)) -> dict[str, object]:
    """``module name -> path`` of every module and package under the ``roots`` directories."""
    mods = {}
    for path in sorted(p for root in roots for p in (REPO / root).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def import_graph(mods: dict) -> dict[str, set[str]]:
    """``module -> csi modules it imports`` anywhere in its code (module level or in a function)."""
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                deps.add(module)
                deps.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import module`
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a module on a higher floor."""
    return sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps if floor_of(b) > floor_of(a))


def test_no_package_imports_one_above_it():
    graph = import_graph(csi_modules(("csi", "synthcovers", "audiofp", "jobs", "tools")))
    assert graph["csi.embed.embedder"] and graph["tools.train"]
    assert upward_imports(graph) == []
    assert upward_imports({"csi.io.audio": {"csi.train.trainer"}, "csi.train.trainer": {"csi.io.audio"}}) == [
        "csi.io.audio -> csi.train.trainer"]
    assert floor_of("csi.modeldir") > floor_of("csi.models") and floor_of("csi") < floor_of("tools")


def test_no_import_circles():
    graph = import_graph(csi_modules(("csi", "synthcovers", "audiofp", "jobs", "tools")))
    assert graph["csi.features.extract"] and graph["csi.align.aligner"]  # the checker sees relative imports
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Each module is imported first, with no module of this repository loaded before it (third-party packages
# such as torch stay loaded between modules: one interpreter instead of 70 keeps this fast).
_IMPORT_EACH = r"""
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("csi", "synthcovers", "audiofp", "jobs", "tools")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own():
    names = list(csi_modules(("csi", "synthcovers", "audiofp", "jobs", "tools")))
    r = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *names], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
