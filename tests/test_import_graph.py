"""The import graph: dependencies flow one way (../shared/STYLE.md, "The shape of the
project"). Only module-level imports count: an import inside a function is a
deliberate lazy one (the CLI's commands, a checkpoint's pipeline kind)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"micrograd": ROOT / "micrograd", "micrograd_cli": ROOT / "cli"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path, known: set) -> set:
    """The project modules that ``name`` imports at module level."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports nothing at run time
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # a submodule by name, else a name from the module
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else base)
    return {t for t in targets if t in known and t != name}


def graph() -> dict[str, set]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_there_are_no_import_cycles():
    edges = graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_sequential_imports_only_the_module_base():
    assert graph()["micrograd.nn.sequential"] <= {"micrograd.nn.module"}


@pytest.mark.parametrize("module", ["micrograd.evaluate", "micrograd.predict",
                                    "micrograd.inference", "micrograd.run"])
def test_inference_never_imports_the_trainer(module):
    code = (f"import sys, {module}; "
            "bad = [m for m in ('micrograd.train', 'micrograd.training') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("low, high", [("micrograd.kernels", "micrograd.engine"),
                                       ("micrograd.engine", "micrograd.nn"),
                                       ("micrograd.nn", "micrograd.training"),
                                       ("micrograd.nn", "micrograd.config"),
                                       ("micrograd.engine", "micrograd.config"),
                                       ("micrograd.training", "micrograd.config"),
                                       ("micrograd", "micrograd_cli")])
def test_nothing_imports_to_its_right(low, high):
    """The compiled kernels never import the engine; the engine never imports nn;
    engine, nn and the Trainer never import the config schema (pydantic, YAML);
    nothing in the library imports the CLI."""
    offenders = {name: sorted(t for t in targets if t == high or t.startswith(high + "."))
                 for name, targets in graph().items()
                 if (name == low or name.startswith(low + ".")) and not name.startswith(high)}
    assert not {k: v for k, v in offenders.items() if v}


def test_every_package_is_installed():
    """pyproject.toml lists the packages by hand (cli/ installs as micrograd_cli); one
    left out imports here, from the source tree, but not from an installed wheel."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert found == listed
