"""The shape of the codebase: no import cycles, private modules used only by their package,
shipped code independent of the test-data package, and a CLI that starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Import name -> folder (pyproject's package-dir).
PACKAGES = {"evalkit": REPO / "evalkit", "evalkit.detectors": REPO / "detectors",
            "evalkit.widgets": REPO / "widgets", "evalkit.datasets": REPO / "datasets"}
SHIPPED = ("evalkit", "evalkit.detectors", "evalkit.widgets")


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.rsplit(".", node.level)[0] if not module.endswith("__init__") else module
    return f"{base}.{node.module}" if node.module else base


def module_imports(module: str, path: Path) -> set[str]:
    """evalkit modules that ``module`` imports, at the top or inside functions (a lazy import is
    still a dependency); ``if TYPE_CHECKING`` blocks never run and are left out."""
    tree = ast.parse(path.read_text())
    known = _modules()
    out: set[str] = set()
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        out.update(n for n in names if n in known and n != module)
    return out


def import_graph() -> dict[str, set[str]]:
    return {module: module_imports(module, path) for module, path in _modules().items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    graph = import_graph()
    # Packages' __init__ files re-export their submodules: drop package -> own submodule edges.
    for package in PACKAGES:
        graph[package] = {m for m in graph.get(package, set()) if not m.startswith(package + ".")}
    assert find_cycle(graph) is None


def test_shipped_code_does_not_read_the_test_data_package() -> None:
    offenders = {}
    for module, path in _modules().items():
        if module.startswith(SHIPPED) and not module.startswith("evalkit.datasets"):
            text = path.read_text()
            if "evalkit.datasets" in text.replace('"evalkit.datasets"', ""):
                hits = [n for n in module_imports(module, path) if n.startswith("evalkit.datasets")]
                lazy = "from evalkit.datasets" in text or "import evalkit.datasets" in text
                if hits or lazy:
                    offenders[module] = hits or ["(imported inside a function)"]
    assert offenders == {}


def test_private_modules_are_used_only_inside_their_package() -> None:
    offenders = []
    for path in [*REPO.glob("datasets/*.py"), *REPO.glob("benchmarks/*.py"), *REPO.glob("evalkit/*.py"),
                 *REPO.glob("widgets/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evalkit.detectors._"):
                offenders.append(f"{path.relative_to(REPO)}: {node.module}")
    assert offenders == []


def test_no_repository_root_on_evalkit_path() -> None:
    """evalkit.datasets resolves through the installed package map, not a __path__ hack."""
    code = "import evalkit, evalkit.datasets.footage as f; print(evalkit.__path__); print(f.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True).stdout
    assert str(REPO) + "'" not in out.splitlines()[0]
    assert out.splitlines()[1] == "evalkit.datasets.footage"


@pytest.mark.parametrize("argv", [["--help"], ["results", "--help"], ["detectors"]])
def test_cli_starts_without_heavy_imports(argv: list[str]) -> None:
    code = ("import sys\nfrom evalkit.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'mediapipe', 'pandas', 'cv2') if m in sys.modules))") % (argv,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_import_evalkit_loads_no_torch_until_used() -> None:
    code = ("import sys, evalkit\nprint('torch' in sys.modules)\n"
            "evalkit.DetectorResult, evalkit.BaseDetector, evalkit.detector_facts('framediff')\n"
            "print('torch' in sys.modules)\nevalkit.get_detector('framediff')\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_lazy_torch_is_torch_once_used() -> None:
    from evalkit._lazy import lazy_import

    import torch as real

    lazy = lazy_import("torch")
    assert lazy.zeros(2).sum().item() == 0 and lazy.Tensor is real.Tensor
    assert isinstance(real.ones(1), lazy.Tensor) and lazy.float32 is real.float32
