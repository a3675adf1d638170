"""The package's shape: parts by role, imports only downwards, no circles, the travelling model files self-contained.

Every `import` statement of every module is read from the source (also the ones inside functions), so a lazy import
that goes the wrong way is caught as well as a module-level one.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "ivt_hf"

# a part imports only the parts before it (and itself); the root package `ivt_hf` only imports `model`
LAYERS = (
    "model",
    "errors",
    "atomic",
    "outputs",
    "data",
    "evaluation",
    "footage",
    "search",
    "hub",
    "onnx",
    "conversion",
    "training",
    "demo",
    "app",
    "cli",
    "__main__",
)
TRAVELLING_MODULES = ("configuration_ivt", "modeling_ivt", "image_processing_ivt", "processing_ivt")


def _module_name(path: Path) -> str:
    parts = ("ivt_hf", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """The ivt_hf modules that `module` imports (a `from package import name` counts the submodule when `name` is
    one, else the package)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {name for name in found if name == "ivt_hf" or name.startswith("ivt_hf.")}


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "model"  # the root package counts as the model part
    return LAYERS.index(part)


def test_every_module_belongs_to_a_known_part():
    assert {module.split(".")[1] for module in MODULES if "." in module} == set(LAYERS)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} ({LAYERS[_layer(module)]}) imports {target} ({LAYERS[_layer(target)]})"
        for module, targets in graph.items()
        for target in targets
        if _layer(target) > _layer(module)
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the module graph as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(module: str, stack: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if state.get(target) is None and target in graph:
                cycle = visit(target, [*stack, target])
                if cycle:
                    return cycle
        state[module] = 2
        return None

    for module in graph:
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_no_part_imports_a_part_above_it():
    assert upward_imports(GRAPH) == []


def test_no_import_circles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def _listed_parts(lines: list[str], pattern: str) -> list[str]:
    """The parts a layer list names, in its order: `model/`, `errors.py`, `__main__.py` give model, errors, __main__."""
    found = (re.match(pattern, line) for line in lines)
    return [match.group(1).removesuffix("/").removesuffix(".py") for match in found if match]


def test_the_layer_lists_of_the_docs_name_every_part_in_order():
    """The package docstring and docs/design.md's "Package layout" list every part of LAYERS, in its order, so that a
    reader learns the layering from either (they had left out errors / atomic / outputs / app / __main__)."""
    docstring = ast.get_docstring(ast.parse((PACKAGE_ROOT / "__init__.py").read_text())).splitlines()
    assert _listed_parts(docstring, r"^    (\S+)\s") == list(LAYERS)
    design = (PACKAGE_ROOT.parents[1] / "docs" / "design.md").read_text().split("## Package layout\n", 1)[1]
    assert _listed_parts(design.split("\n## ", 1)[0].splitlines(), r"^\d+\. `([^`]+)`") == list(LAYERS)


def test_the_checks_can_fail():
    """On a made-up graph with the two faults the issue named: data <-> synthpedes, and demo's table from the CLI."""
    graph = {
        "ivt_hf.data.normalise": {"ivt_hf.data.synthpedes"},
        "ivt_hf.data.synthpedes": {"ivt_hf.data.normalise"},
        "ivt_hf.demo": {"ivt_hf.cli.evaluation"},
        "ivt_hf.cli.evaluation": set(),
    }
    assert find_cycle(graph) == ["ivt_hf.data.normalise", "ivt_hf.data.synthpedes", "ivt_hf.data.normalise"]
    assert upward_imports(graph) == ["ivt_hf.demo (demo) imports ivt_hf.cli.evaluation (cli)"]
    # lazy imports count: a function-level relative import is resolved like a module-level one
    lazy = PACKAGE_ROOT / "demo.py"
    assert "ivt_hf.training.finetuning.train" in GRAPH[_module_name(lazy)]


@pytest.mark.parametrize("name", TRAVELLING_MODULES)
def test_model_files_import_only_each_other(name):
    """`save_model_folder` copies these four files beside the weights for `trust_remote_code`: they may import
    torch, transformers, numpy and PIL, and each other, nothing else of ivt_hf."""
    module = f"ivt_hf.model.{name}"
    assert all(target.startswith("ivt_hf.model.") for target in GRAPH[module]), GRAPH[module]


def test_python_dash_m_is_the_ivt_command():
    result = subprocess.run([sys.executable, "-m", "ivt_hf", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("demo", "train", "evaluate", "index", "search", "data", "convert", "push", "app"):
        assert f"    {command} " in result.stdout, command


def test_importing_the_root_loads_only_the_model_part_and_old_names_still_resolve():
    script = (
        "import sys, ivt_hf\n"
        "loaded = sorted({m.split('.')[1] for m in sys.modules if m.startswith('ivt_hf.')})\n"
        "assert loaded == ['model'], loaded\n"
        "from ivt_hf import convert_original_checkpoint, load_backbones\n"
        "from ivt_hf import register_for_remote_code, save_model_folder\n"
        "from ivt_hf.conversion import convert_original_checkpoint as moved\n"
        "assert convert_original_checkpoint is moved\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


MAX_FUNCTION_LINES = 80


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`path:line name (N lines)` of every function or method under `root` longer than `limit` lines, counted from
    the `def` line through its last line (decorators not counted), nested functions included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_over_80_lines():
    """The house rule (docs/design.md, style): a function reads in one screen; a longer one is split into named
    pieces."""
    assert long_functions(PACKAGE_ROOT) == []


def test_the_function_length_check_counts_from_def_to_last_line(tmp_path):
    """80 lines (the def line and 79 more) pass; 81 fail, a decorated method as well as a function."""
    package = tmp_path / "package"
    package.mkdir()
    body = "".join(f"    value_{index} = {index}\n" for index in range(79))
    method_body = textwrap.indent(body, "    ") + "        return 0\n"
    source = f"def fits():\n{body}\n\nclass Holder:\n    @staticmethod\n    def too_long():\n{method_body}"
    (package / "module.py").write_text(source)
    assert long_functions(package) == ["package/module.py:85 too_long (81 lines)"]
