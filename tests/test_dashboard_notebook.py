"""The scheduled dashboard notebook runs under papermill with parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.batch import run_root

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "04_dashboard.ipynb"


def test_dashboard_notebook_runs_under_papermill(small_root, tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"root": str(small_root), "evaluate": True,
                                                                     "detectors": ["framediff"]},
                               kernel_name="python3", cwd=str(NOTEBOOK.parent), progress_bar=False)
    nb = json.loads(out.read_text())
    text = json.dumps(nb["cells"])
    assert "4 computed, 0 already stored, 0 errors" in text
    assert "application/vnd.plotly.v1+json" in text  # the trend figures rendered
    assert "ckpt_a" in text and "ckpt_b" in text
    assert run_root(small_root, detectors=["framediff"], workers=0, write_report=False).computed == 0
