"""The import contract: the package's layers, and no cycles between its parts.

A part is a top-level module or subpackage of exchange_cli. Every import counts, at module level or inside a
function (a lazy import is still a dependency). A part may import parts of its own layer or below; no set
of parts may import each other in a circle. A new part must be given a layer here.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "exchange_cli"

# Bottom first.
LAYERS: list[tuple[str, set[str]]] = [
    ("base: no exchange concept, no library", {
        "__version__", "errors", "names", "quoting", "json_syntax", "jsonpos", "bounded", "confined", "durable",
        "lockedtemp", "logs", "interrupts", "children", "machine", "versions", "terminal", "progress", "reference",
        "testgates",
    }),
    ("libraries without exchange concepts", {"git", "committed", "web", "image", "rootfs", "sbom", "storage", "remote",
                                              "export", "demo_image"}),
    ("the exchange model", {"specs", "manifests", "repository", "commit_identity", "ownership", "provenance",
                            "catalog"}),
    ("use cases", {"validation", "conformance", "invocation", "process", "contrib", "fetch", "demo",
                   "new_exchange"}),
    ("commands and what renders for them", {"commands", "display"}),
    ("the command line", {"cli", "__main__"}),
]


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> Iterable[str]:
    """Every exchange_cli module `path` imports, resolved to absolute names."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    module = ".".join(relative.parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            yield from ([f"{target}.{alias.name}" for alias in node.names] if node.module is None else [target])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("exchange_cli"):
            yield node.module or ""
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("exchange_cli"))


def package_graph() -> dict[str, set[str]]:
    """Which parts each part imports: a copy for the caller of the graph parsed once per process (four tests
    read it, and a parse of the package costs about half a second of CPU)."""
    return {part: set(targets) for part, targets in _parsed_package_graph().items()}


@functools.cache
def _parsed_package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        source = part_of(".".join(relative.parts))
        for target in imports_of(path):
            if part_of(target) not in (source, "__init__"):
                edges[source].add(part_of(target))
    return dict(edges)


def all_parts() -> set[str]:
    parts = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return parts | {path.parent.name for path in PACKAGE.glob("*/__init__.py")} | {"__version__"}


def layer_problems(edges: dict[str, set[str]]) -> list[str]:
    level = {part: index for index, (_, parts) in enumerate(LAYERS) for part in parts}
    problems = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            if level.get(target, -1) > level.get(source, -1):
                problems.append(f"{source} ({LAYERS[level[source]][0]}) imports {target} "
                                f"({LAYERS[level[target]][0]}), a layer above it")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def test_every_part_has_a_layer() -> None:
    placed = set().union(*(parts for _, parts in LAYERS))
    assert all_parts() - placed == set(), "give the new part a layer in LAYERS"
    assert placed - all_parts() == set(), "a part in LAYERS no longer exists"


def test_no_part_imports_a_layer_above_it() -> None:
    assert layer_problems(package_graph()) == []


def test_no_parts_import_each_other_in_a_circle() -> None:
    assert cycles(package_graph()) == []


def test_a_wrong_way_import_breaks_the_contract() -> None:
    """The checks see what they must: a library importing a use case, and a circle through two layers."""
    wrong = {**package_graph()}
    wrong["image"] = {*wrong.get("image", set()), "process"}
    assert any(problem.startswith("image (libraries without exchange concepts) imports process")
               for problem in layer_problems(wrong))
    assert sorted({"image", "process"} & {p for c in cycles(wrong) for p in c}) == ["image", "process"]


def test_the_libraries_import_no_renderer() -> None:
    """Image sources, exports and uploads report through progress.py's protocol, never a display."""
    edges = package_graph()
    for library in LAYERS[1][1]:
        assert not edges.get(library, set()) & {"display", "terminal"}, library


def test_the_process_map_names_every_module_of_process() -> None:
    documented = (PACKAGE / "process" / "__init__.py").read_text(encoding="utf-8")
    named = set(re.findall(r"([a-z_]+)\.py", documented)) | set(re.findall(r"([a-z_]+)/", documented))
    modules = {path.stem for path in (PACKAGE / "process").glob("*.py") if path.stem != "__init__"}
    packages = {path.parent.name for path in (PACKAGE / "process").glob("*/__init__.py")}
    assert (modules | packages) - named == set()
