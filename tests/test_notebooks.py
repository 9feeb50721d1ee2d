"""The notebooks run top to bottom (nbclient) on a small scored root and show their widgets.

One kernel serves the three notebooks (starting a kernel and importing torch costs more than
the notebooks themselves); each starts from an emptied namespace (``%reset -f``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from test_widgets import shared_review_root

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXPECTED_WIDGETS = {"01_quickstart.ipynb": 1, "02_checkpoint_sweep.ipynb": 1, "03_review_session.ipynb": 4}


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelManager]:
    root = shared_review_root()
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(NOTEBOOKS), env={**os.environ, "EVALKIT_DEMO_ROOT": str(root), "EVALKIT_REVIEWER": "nb-test"})
    yield km
    km.shutdown_kernel(now=True)


def run_notebook(name: str, km: KernelManager) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    NotebookClient(notebook, km=km, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute(cleanup_kc=False)
    return notebook


def widget_outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            if WIDGET_VIEW in out.get("data", {})]


@pytest.mark.parametrize("name", sorted(EXPECTED_WIDGETS))
def test_notebook_runs_top_to_bottom(name: str, kernel: KernelManager) -> None:
    notebook = run_notebook(name, kernel)
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert errors == []
    assert len(widget_outputs(notebook)) == EXPECTED_WIDGETS[name]
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "def " not in code and "class " not in code  # no library logic in notebooks
