"""The repository's import structure: utils holds only utilities, tasks sit on top, no cycles
anywhere (the package, the tools, the benchmarks and main.py), and the tasks' functions take few
parameters."""
import ast
from pathlib import Path
from typing import Dict, Set

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "paddlevideo"
DOMAIN = ("modeling", "loader", "solver", "tasks", "metrics", "inference", "multigrid",
          "convert")
# scripts run from their folder: a bare ``import common`` in benchmarks/ is benchmarks/common.py
SCRIPT_FOLDERS = ("tools", "benchmarks")
# the top-level folders that hold no Python, or only tests (which import everything)
NOT_CODE = {"configs", "data", "docs", "tests"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, target: str) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def source_files() -> Dict[str, Path]:
    """module name → file, for paddlevideo/, tools/, benchmarks/ and main.py."""
    files = list(PACKAGE.rglob("*.py")) + [REPO_ROOT / "main.py"]
    for folder in SCRIPT_FOLDERS:
        files += sorted((REPO_ROOT / folder).glob("*.py"))
    return {_module_name(p): p for p in files}


def _absolute(name: str, target: str, modules: Dict[str, Path]) -> str:
    """``target`` of an absolute import in ``name``; a script's sibling by its bare name."""
    folder = name.split(".")[0]
    if folder in SCRIPT_FOLDERS and f"{folder}.{target}" in modules:
        return f"{folder}.{target}"
    return target


def import_graph() -> Dict[str, Set[str]]:
    """module → the project's modules it imports (anywhere in its body)."""
    modules = source_files()
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {_absolute(name, a.name, modules) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    target = _resolve(name, is_package, node.level, node.module or "")
                elif node.module:
                    target = _absolute(name, node.module, modules)
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
    assert "paddlevideo.tasks.train" in GRAPH["main"]  # imported inside a function
    assert "benchmarks.common" in GRAPH["benchmarks.train_paths"]
    assert "benchmarks.train_paths" in GRAPH["benchmarks.train_speed"]
    assert "paddlevideo.modeling.flops" in GRAPH["tools.summary"]


def test_every_top_level_code_folder_is_scanned():
    folders = {p.name for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and any(p.rglob("*.py"))}
    scanned = {name.split(".")[0] for name in GRAPH}
    assert folders - NOT_CODE <= scanned, sorted(folders - NOT_CODE - scanned)
    assert {"paddlevideo", "tools", "benchmarks", "main"} <= scanned


def test_utils_import_no_domain_package():
    offenders = {m: sorted(e for e in edges if e.split(".")[1] in DOMAIN)
                 for m, edges in GRAPH.items() if m.startswith("paddlevideo.utils")}
    assert {m: e for m, e in offenders.items() if e} == {}


def test_only_tasks_and_entry_points_import_tasks():
    importers = sorted(m for m, edges in GRAPH.items()
                       if m.startswith("paddlevideo.") and not m.startswith("paddlevideo.tasks")
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


def test_no_function_in_tasks_but_train_model_takes_more_than_7_parameters():
    crowded = []
    for path in sorted((PACKAGE / "tasks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                count = len([n for n in names if n not in ("self", "cls")])
                if count > 7 and node.name != "train_model":
                    crowded.append(f"{path.name}:{node.name} ({count})")
    assert crowded == []
