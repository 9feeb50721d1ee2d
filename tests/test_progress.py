"""Progress of a run: clips done / total, clips/s and ETA, as text in a terminal and as a widget
in a notebook (the Ray engine's bar is checked in test_ray_engine, on its cluster)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from evalkit.progress import clip_progress

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_bar_counts_clips_with_rate_and_eta(capsys):
    with clip_progress(4, mininterval=0) as bar:
        bar.update(1)
        bar.update(3)
    err = capsys.readouterr().err
    assert "4/4" in err and "clip/s" in err and "<" in err  # elapsed<remaining
    off = clip_progress(4, enabled=False)
    off.update(2)
    assert off.n == 2 and capsys.readouterr().err == ""


def test_local_run_updates_per_clip(clips, capsys):
    import evalkit

    evalkit.score([clips["carphone_pristine.mp4"], clips["bikes.mp4"]], detectors="framediff", progress=True)
    err = capsys.readouterr().err
    assert "1/2" in err and "2/2" in err  # each clip as it finishes, not only at the end


def test_notebook_shows_a_widget_bar(clips):
    path = clips["carphone_pristine.mp4"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import evalkit\ndf = evalkit.score({str(path)!r}, detectors='framediff', progress=True)\nlen(df)")])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    bars = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    assert bars, outputs
    # The bar's final text lives in the widget state the kernel sent (nbclient keeps it).
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    texts = [str(w["state"].get("value", "")) for w in state.values()]
    assert any("1/1" in t and "clip/s" in t for t in texts), texts
