"""The package's import structure: utils holds only utilities, tasks sit on top, no cycles."""
import ast
from pathlib import Path
from typing import Dict, Set

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "paddlevideo"
DOMAIN = ("modeling", "loader", "solver", "tasks", "metrics", "inference", "multigrid",
          "convert")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, target: str) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def import_graph() -> Dict[str, Set[str]]:
    """module → the paddlevideo modules it imports (anywhere in its body)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("paddlevideo")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    target = _resolve(name, is_package, node.level, node.module or "")
                elif (node.module or "").startswith("paddlevideo"):
                    target = node.module
                else:
                    continue
                # ``from pkg import sub`` imports the submodule when there is one
                subs = {f"{target}.{a.name}" for a in node.names} & set(modules)
                edges |= subs or {target}
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


GRAPH = import_graph()


def test_graph_sees_the_known_imports():
    # guards the parser: if these edges were missed, the rules below would pass vacuously
    assert "paddlevideo.modeling.layers" in GRAPH["paddlevideo.modeling.backbones.resnet_slowfast"]
    assert "paddlevideo.utils.config" in GRAPH["paddlevideo.tasks.train"]


def test_utils_import_no_domain_package():
    offenders = {m: sorted(e for e in edges if e.split(".")[1] in DOMAIN)
                 for m, edges in GRAPH.items() if m.startswith("paddlevideo.utils")}
    assert {m: e for m, e in offenders.items() if e} == {}


def test_only_tasks_import_tasks():
    importers = sorted(m for m, edges in GRAPH.items()
                       if not m.startswith("paddlevideo.tasks")
                       and any(e.startswith("paddlevideo.tasks") for e in edges))
    assert importers == []


def test_modeling_does_not_import_loader():
    assert not [m for m, edges in GRAPH.items() if m.startswith("paddlevideo.modeling")
                and any(e.startswith("paddlevideo.loader") for e in edges)]


def find_cycles(graph: Dict[str, Set[str]]) -> list:
    """Every import cycle met by a depth-first walk, as a list of modules."""
    on_path: Dict[str, int] = {}
    done: Set[str] = set()
    cycles = []

    def visit(node: str, path: list) -> None:
        on_path[node] = len(path)
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                cycles.append(path[on_path[nxt]:] + [nxt])
            elif nxt not in done:
                visit(nxt, path)
        path.pop()
        del on_path[node]
        done.add(node)

    for module in sorted(graph):
        if module not in done:
            visit(module, [])
    return cycles


def test_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    # the top package imports the domain packages to register their parts; leave out that edge
    graph = {m: (set() if m == "paddlevideo" else edges) for m, edges in GRAPH.items()}
    assert find_cycles(graph) == []
