"""Layers that only point down, and no import cycles, read from the source with ``ast``.

The layer order enforced, lowest first (a module may import its own layer and any layer below it):

    core      langbuild (the package's __init__, only __version__), langbuild.core.*
    text      langbuild.text.*
    library   packaged, corpus, tokenization, models, extension, embedding_init, training, evaluation,
              reporting
    steps     langbuild.steps.*: read settings, call the library, write outputs
    pipeline  langbuild.pipeline: runs the steps
    project   langbuild.project.*: scaffold, wizard, export, demo: create, fill or ship a project
    cli       langbuild.cli, langbuild.__main__

Every import counts for the layer rule, wherever it is written: at module level, inside a function
(langbuild imports heavy libraries late, which is no licence to reach upwards), or through
``importlib.import_module("langbuild....")``.

Cycles are checked twice. Among imports that run when a module is imported (module and class bodies,
including under ``if``/``try``), a cycle breaks or half-initialises a module depending on which one is
imported first. An import inside a function runs later and may point sideways within its layer, but a
cycle that closes only through such imports is refused too, so that each layer also points one way.

A new module must be given a layer in ``LAYERS`` below; the test says so when one is missing.

Tests and benchmarks use the library, not a step's insides: they may import from a ``langbuild.steps``
module only what the step itself defines under a public name (``prepare``, ``run``, ...). A private
name (``_x``, imported or read as ``step._x``) is the step's own business and may change with it; a
name the step merely imports from a library module is imported from that module instead, so that
the library's users do not depend on what a step happens to import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import langbuild

PACKAGE_DIR = Path(langbuild.__file__).resolve().parent
ROOT = "langbuild"
REPOSITORY = PACKAGE_DIR.parent
STEP_USERS = ("tests", "benchmarks")  # folders whose files use the package from outside

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", (ROOT, "langbuild.core")),
    ("text", ("langbuild.text",)),
    ("library", ("langbuild.packaged", "langbuild.corpus", "langbuild.tokenization", "langbuild.models",
                 "langbuild.extension", "langbuild.embedding_init", "langbuild.training", "langbuild.evaluation",
                 "langbuild.reporting", "langbuild.machine")),
    ("steps", ("langbuild.steps",)),
    ("pipeline", ("langbuild.pipeline",)),
    ("project", ("langbuild.project",)),
    ("cli", ("langbuild.cli", "langbuild.__main__")),
]


@dataclass(frozen=True)
class Import:
    source: str      # the importing module, e.g. langbuild.core.config
    target: str      # the imported langbuild module
    file: Path
    line: int
    at_import: bool  # runs when ``source`` is imported (module or class body), not when a function is called

    def where(self, package_dir: Path) -> str:
        return f"{self.file.relative_to(package_dir.parent)}:{self.line}"


def module_names(package_dir: Path, root: str) -> dict[str, Path]:
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _in_function(parents: dict[ast.AST, ast.AST], node: ast.AST) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _dynamic_target(node: ast.Call) -> str | None:
    """``importlib.import_module("langbuild.x")`` or ``(f"langbuild.steps.{name}")``: the fixed dotted part."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name != "import_module" or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rsplit(".", 1)[0]  # "langbuild.steps." + name -> langbuild.steps
    return None


def collect_imports(package_dir: Path, root: str) -> tuple[dict[str, Path], list[Import]]:
    """Every import of a module of the package by a module of the package, relative ones resolved."""
    modules = module_names(package_dir, root)
    found = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - node.level + 1]  # "." is the package itself
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # "from . import bootstrap" names a submodule; "from .errors import one_line" a name in a module.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            elif isinstance(node, ast.Call):
                dynamic = _dynamic_target(node)
                targets = [dynamic] if dynamic else []
            for target in dict.fromkeys(targets):
                while target and target not in modules and "." in target:  # import_module("pkg.mod.attr")
                    target = target.rpartition(".")[0]
                if target in modules and target != source:
                    found.append(Import(source, target, path, node.lineno, not _in_function(parents, node)))
    return modules, found


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]], root: str) -> tuple[int, str] | None:
    """(rank, name) of the layer whose longest prefix matches; the root package matches only itself."""
    best = None
    for rank, (name, prefixes) in enumerate(layers):
        for prefix in prefixes:
            matches = module == prefix if prefix == root else module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank, name)
    return best and best[1:]


def layer_violations(package_dir: Path, root: str, layers) -> list[str]:
    modules, imports = collect_imports(package_dir, root)
    problems = [f"{modules[m].relative_to(package_dir.parent)} has no layer: add {m} to LAYERS in tests/core/test_layers.py"
                for m in modules if layer_of(m, layers, root) is None]
    for imp in imports:
        source, target = layer_of(imp.source, layers, root), layer_of(imp.target, layers, root)
        if source and target and target[0] > source[0]:
            problems.append(f"{imp.where(package_dir)}: {imp.source} ({source[1]} layer) imports {imp.target} "
                            f"({target[1]} layer, above it); move the shared code down, or the import up")
    return problems


def import_cycles(package_dir: Path, root: str, at_import_only: bool = True) -> list[str]:
    """Each cycle, as 'a -> b -> a' with the file:line of each edge; among imports that run at import time
    only, or among all of them."""
    _, imports = collect_imports(package_dir, root)
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.at_import or not at_import_only:
            edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    cycles, seen = [], set()
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, {})):
            if state.get(target) == 1:
                loop = path[path.index(target):] + [target]
                key = frozenset(loop)
                if key not in seen:
                    seen.add(key)
                    steps = [f"{a} ({edges[a][b].where(package_dir)}) -> {b}" for a, b in zip(loop, loop[1:])]
                    cycles.append("import cycle: " + "; ".join(steps))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return cycles


def test_every_import_points_to_the_same_layer_or_below():
    problems = layer_violations(PACKAGE_DIR, ROOT, LAYERS)
    assert not problems, "imports that point up a layer:\n" + "\n".join(problems)


def test_core_imports_nothing_from_langbuild_outside_core():
    _, imports = collect_imports(PACKAGE_DIR, ROOT)
    outside = [f"{imp.where(PACKAGE_DIR)}: {imp.source} imports {imp.target}" for imp in imports
               if imp.source.startswith("langbuild.core") and not imp.target.startswith("langbuild.core")]
    assert not outside, "core must import only core:\n" + "\n".join(outside)


def test_no_import_cycles_at_import_time():
    cycles = import_cycles(PACKAGE_DIR, ROOT)
    assert not cycles, "\n".join(cycles)


def test_no_import_cycles_even_through_imports_inside_functions():
    # Such a cycle runs only because one import is delayed, and it needs a sideways import within a
    # layer (the layer rule bans upward ones): evaluation/builtin_tasks <-> harness was one. Putting the
    # shared code in the lower of the two modules keeps each layer itself in one direction.
    cycles = import_cycles(PACKAGE_DIR, ROOT, at_import_only=False)
    assert not cycles, "\n".join(cycles) + "\n(counting imports inside functions: move the shared code down)"


def defined_names(path: Path) -> tuple[set[str], dict[str, str]]:
    """Top-level names a module defines itself (def, class, assignment), and those it imports, with where from."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    defined, imported = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            source = "." * node.level + (node.module or "")
            imported.update({alias.asname or alias.name: f"{source}.{alias.name}" for alias in node.names})
    return defined, imported


def step_import_problems(files: list[Path], base: Path, package_dir: Path, root: str) -> list[str]:
    """Where a file imports a private name from a step, reads ``step._x``, or imports from a step a name
    the step itself imports from the library."""
    modules = module_names(package_dir, root)
    steps = f"{root}.steps"
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        step_aliases: dict[str, str] = {}  # local name -> the step module it is bound to
        where = f"{path.relative_to(base)}"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level and \
                    (node.module == steps or node.module.startswith(steps + ".")):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in modules:  # from langbuild.steps import train
                        step_aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    elif alias.name.startswith("_"):
                        problems.append(f"{where}:{node.lineno}: imports the private {alias.name} from {node.module}; "
                                        "make it public or move it into a library module")
                    elif node.module in modules:
                        defined, imported = defined_names(modules[node.module])
                        if alias.name not in defined and alias.name in imported:
                            problems.append(f"{where}:{node.lineno}: imports {alias.name} from {node.module}, which "
                                            f"only imports it ({imported[alias.name]}): import it from there")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(steps + ".") and alias.asname:
                        step_aliases[alias.asname] = alias.name
        # Names are bound anywhere in the file (often inside a test function): look for their use afterwards.
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                dotted = ast.unparse(node.value)
                if dotted in step_aliases or dotted.startswith(steps + "."):
                    problems.append(f"{where}:{node.lineno}: reads the private {dotted}.{node.attr}; "
                                    "make it public or move it into a library module")
    return problems


def test_tests_and_benchmarks_use_no_private_or_borrowed_name_of_a_step():
    files = [path for folder in STEP_USERS for path in sorted((REPOSITORY / folder).rglob("*.py"))]
    problems = step_import_problems(files, REPOSITORY, PACKAGE_DIR, ROOT)
    assert not problems, "tests and benchmarks reach into steps:\n" + "\n".join(problems)


# ---------------------------------------------------------------- the checker itself, on a package built here


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


PKG_LAYERS = [("core", ("pkg", "pkg.core")), ("library", ("pkg.lib",)), ("cli", ("pkg.cli",))]


def test_the_checker_names_an_upward_import_and_a_module_without_a_layer(tmp_path):
    package = _write(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/config.py": "def check():\n    from ..lib.codes import parse\n    return parse\n",
        "lib/__init__.py": "",
        "lib/codes.py": "from ..core import config\nfrom pkg.core.config import check\n",
        "cli.py": "import importlib\nfrom .lib import codes\nrun = importlib.import_module('pkg.lib.codes')\n",
        "stray.py": "",
    })
    problems = layer_violations(package, "pkg", PKG_LAYERS)
    assert problems == [
        "pkg/stray.py has no layer: add pkg.stray to LAYERS in tests/core/test_layers.py",
        "pkg/core/config.py:2: pkg.core.config (core layer) imports pkg.lib.codes (library layer, above it); "
        "move the shared code down, or the import up",
    ]


def test_the_checker_finds_a_cycle_at_import_time_but_not_through_a_function(tmp_path):
    package = _write(tmp_path, {
        "__init__.py": "",
        "lib/__init__.py": "",
        "lib/a.py": "from . import b\n",
        "lib/b.py": "try:\n    from .a import x\nexcept ImportError:\n    pass\n",
        "lib/c.py": "from .d import y\n",
        "lib/d.py": "def later():\n    from .c import z\n",
    })
    assert import_cycles(package, "pkg") == [
        "import cycle: pkg.lib.a (pkg/lib/a.py:1) -> pkg.lib.b; pkg.lib.b (pkg/lib/b.py:2) -> pkg.lib.a"
    ]
    assert import_cycles(package, "pkg", at_import_only=False)[1] == (
        "import cycle: pkg.lib.c (pkg/lib/c.py:1) -> pkg.lib.d; pkg.lib.d (pkg/lib/d.py:2) -> pkg.lib.c"
    )


def test_the_checker_names_private_and_borrowed_step_names(tmp_path):
    package = _write(tmp_path, {
        "__init__.py": "",
        "lib.py": "def helper():\n    pass\n",
        "steps/__init__.py": "",
        "steps/extend.py": "from ..lib import helper\nLIMIT = 3\n\ndef run():\n    pass\n\ndef _prefix():\n    pass\n",
    })
    user = tmp_path / "tests" / "test_x.py"
    user.parent.mkdir()
    user.write_text("from pkg.steps.extend import LIMIT, _prefix, helper, run\n"
                    "from pkg.steps import extend\n"
                    "import pkg.steps.extend as step\n"
                    "extend._prefix()\nstep._prefix()\nextend.run()\n")
    assert step_import_problems([user], tmp_path, package, "pkg") == [
        "tests/test_x.py:1: imports the private _prefix from pkg.steps.extend; make it public or move it into a "
        "library module",
        "tests/test_x.py:1: imports helper from pkg.steps.extend, which only imports it (..lib.helper): import it "
        "from there",
        "tests/test_x.py:4: reads the private extend._prefix; make it public or move it into a library module",
        "tests/test_x.py:5: reads the private step._prefix; make it public or move it into a library module",
    ]


def test_the_package_root_holds_only_the_entry_points():
    """Library code lives in packages named for what they are; the root keeps the CLI and the pipeline."""
    loose = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py", "pipeline.py"]
