"""The import graph of the repository, read from the source with `ast`: no import cycle among the project's own
modules, every package imports only packages on lower floors (`FLOORS`), and no library module imports a
command-line script.

Every `import` counts, at module level or inside a function (a lazy import is still a dependency). An import
resolves to the longest project module it names: `from training import loss` is an edge to `training.loss`,
`from training.loss import StyleGAN2Loss` one to `training.loss`. Importing a module does not count as importing
its parent packages' `__init__`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # Wherever tests/ nests.
SKIP_DIRS = {"tests", "build", "dist", "docs"}  # Besides hidden folders, virtual environments and *.egg-info.

# Modules that the command line runs and no library module may import: the top-level scripts (`python X.py`)
# and the benchmarks (`python benchmarks/X.py`, not a package). legacy.py is one of them: it keeps the
# original's `import legacy` working for users' code, but nothing in the project imports it (the project
# imports `training.checkpoint`).
SCRIPT_DIRS = (".", "benchmarks")

# The floors of the house, bottom up: a package imports only packages on lower floors (or its own modules).
# adaptivemix is the method as a plug-in (torch only); training runs the metrics during training; the labs
# sit on everything below them. Scripts, benchmarks and tests stand above all floors.
FLOORS = [{"dnnlib"}, {"torch_utils", "adaptivemix", "metrics"}, {"training"}, {"labs"}]


def project_modules(repo: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the project (packages' `__init__` under the package)."""
    modules = {}
    for path in sorted(repo.rglob("*.py")):
        parts = path.relative_to(repo).parts
        if any(p in SKIP_DIRS or p.startswith(".") or p.endswith(".egg-info") or p.startswith("venv") for p in parts):
            continue
        name_parts = list(parts[:-1]) + ([] if parts[-1] == "__init__.py" else [parts[-1][:-3]])
        if name_parts:
            modules[".".join(name_parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that is `name` or a package above it."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `module` (source file `path`) imports anywhere in its body."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for name in targets if (target := _resolve(name, modules)) not in (None, module))
    return found


def import_graph(repo: Path = REPO) -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    modules = project_modules(repo)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def scripts(repo: Path = REPO) -> set[str]:
    """The command-line scripts: the .py files at the top of the repository and in benchmarks/ (not packages)."""
    return {
        name
        for name, path in project_modules(repo).items()
        if path.name != "__init__.py" and path.parent.relative_to(repo).as_posix() in SCRIPT_DIRS
    }


def upward_imports(graph: dict[str, set[str]], script_names: set[str]) -> set[tuple[str, str]]:
    """(library module, script) for every library module that imports a command-line script."""
    return {
        (module, target)
        for module, targets in graph.items()
        if module not in script_names
        for target in targets
        if target in script_names
    }


# ----------------------------------------------------------------------------
# The graph code on hand-made trees.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_graph_resolves_absolute_relative_and_lazy_imports(tmp_path):
    repo = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import thing\n",
            "pkg/a.py": "import os\nfrom . import b\n",
            "pkg/b.py": "def f():\n    from .sub.c import g\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from ..a import thing\nimport pkg.sub\n",
            "tool.py": "import pkg.b as b\nfrom pkg import sub\n",
            "tests/test_x.py": "import tool\n",
        },
    )
    assert import_graph(repo) == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.sub"},
        "tool": {"pkg.b", "pkg.sub"},
    }


def test_cycles_finds_every_circle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_scripts_are_top_level_and_benchmark_files_and_upward_imports_name_their_importers(tmp_path):
    repo = _tree(
        tmp_path,
        {
            "generate.py": "import lib.x\n",
            "lib/__init__.py": "",
            "lib/x.py": "def main():\n    import generate\n",
            "benchmarks/ops.py": "import generate\n",
        },
    )
    assert scripts(repo) == {"generate", "benchmarks.ops"}
    assert upward_imports(import_graph(repo), scripts(repo)) == {("lib.x", "generate")}


# ----------------------------------------------------------------------------
# The repository.


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_repository_graph_sees_the_known_modules(graph):
    assert {"generate", "train", "legacy", "training.loss", "torch_utils.ops.bias_act"} <= graph.keys()
    assert {"generate", "projector", "style_mixing", "calc_metrics", "train", "dataset_tool", "legacy"} <= scripts()
    assert all(
        "training.generator_io" in graph[m] for m in ("generate", "projector", "style_mixing", "training.export")
    )


def test_no_import_cycles(graph):
    assert cycles(graph) == [], f"import cycles: {[sorted(c) for c in cycles(graph)]}"


def floor_violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) for every import from a package to one on its own floor or above (not itself)."""
    floor = {package: level for level, packages in enumerate(FLOORS) for package in packages}
    return {
        (module, target)
        for module, targets in graph.items()
        if module.split(".")[0] in floor
        for target in targets
        if target.split(".")[0] in floor
        and target.split(".")[0] != module.split(".")[0]
        and floor[target.split(".")[0]] >= floor[module.split(".")[0]]
    }


def test_floor_violations_name_imports_across_and_up_only():
    graph = {
        "training.loss": {"adaptivemix.gan", "training.networks", "dnnlib.util"},  # Down and within: fine.
        "metrics.x": {"adaptivemix.mixing"},  # Same floor, other package: a violation.
        "dnnlib.util": {"training.loss"},  # Up: a violation.
        "generate": {"labs.toy.cli"},  # Scripts stand above every floor.
    }
    assert floor_violations(graph) == {("metrics.x", "adaptivemix.mixing"), ("dnnlib.util", "training.loss")}


def test_every_package_imports_only_packages_on_lower_floors(graph):
    packages = {module.split(".")[0] for module in graph if "." in module}
    assert {p for floor in FLOORS for p in floor} == packages - {"benchmarks"}, "a new package needs a floor"
    assert floor_violations(graph) == set()


def test_ops_plugins_self_check_bias_act_upfirdn2d_import_one_way(graph):
    """_self_check <- _plugins <- bias_act, upfirdn2d: the helpers never import the ops that use them."""
    ops = "torch_utils.ops."
    assert not graph[ops + "_self_check"] & {ops + "_plugins", ops + "bias_act", ops + "upfirdn2d"}
    assert not graph[ops + "_plugins"] & {ops + "bias_act", ops + "upfirdn2d"}
    for module in ("bias_act", "upfirdn2d"):
        assert {ops + "_plugins", ops + "_self_check"} <= graph[ops + module]


def test_no_library_module_imports_a_script(graph):
    assert upward_imports(graph, scripts()) == set(), (
        f"library modules importing scripts: {upward_imports(graph, scripts())}"
    )
