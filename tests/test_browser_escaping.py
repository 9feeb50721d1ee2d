"""Escaping in the real browser: a ``<script>`` prompt or note shows as text, and runs nothing, in
every review widget (in JupyterLab, driven by Playwright in Debian's Chromium) and in report.html.

Skipped like tests/test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from test_browser import CHROMIUM_FLAGS, KERNEL_IDLE, find_chromium, serve_lab
from test_widgets import STREET_PROMPT, XSS_PROMPT, private_tmp_dir, shared_review_root

pytestmark = pytest.mark.browser

REVIEWER = "escaping-test"
NOTE = '<script>window.__evk_xss = "note"</script><img src=x onerror="window.__evk_xss=\'note-img\'"> & "odd"'
# Each widget in its own cell, as a reviewer would open them.
CELLS = [
    "import os\nfrom evalkit.widgets import BlindedAB, Calibration, ReviewData, ReviewQueue, SideBySide, VideoReview\n"
    "ROOT, NOTE = os.environ['EVALKIT_ESCAPE_ROOT'], os.environ['EVALKIT_ESCAPE_NOTE']",
    "ReviewQueue(ROOT, reviewer='escaping-test')",
    "VideoReview(ROOT, reviewer='escaping-test')",
    "SideBySide(ROOT, prompt_id='street')",
    "data = ReviewData(ROOT)\nab = BlindedAB(data, data.checkpoints[0], data.checkpoints[-1], reviewer='escaping-test')\n"
    "ab.note = NOTE\nab",
    "Calibration(ROOT)",
]


def _root_with_notes() -> Path:
    """A copy of the scored review root whose every clip carries NOTE from REVIEWER."""
    from evalkit.batch import run_root
    from evalkit.store import open_store
    from evalkit.widgets import ReviewData

    source = shared_review_root()
    root = private_tmp_dir("evalkit-escape-") / "root"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".evalkit.lock", "evalkit.db*", ".evalkit_cache"))
    with closing(sqlite3.connect(source / "evalkit.db")) as a, closing(sqlite3.connect(root / "evalkit.db")) as b:
        a.backup(b)
    run_root(root, detectors=["framediff", "brightspots_test"], workers=0)  # items under the new paths; writes report.html
    with open_store(root=root) as store:
        for clip in ReviewData(root, store=store).clips():
            store.add_label(video_hash=clip.video_hash, path=clip.path, checkpoint=clip.checkpoint, reviewer=REVIEWER,
                            kind="note", note=NOTE)
    return root


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c} for c in CELLS]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                             "language": "python"}},
                                "nbformat": 4, "nbformat_minor": 5}))


def test_script_prompts_and_notes_show_as_text_in_every_widget_and_the_report() -> None:
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    root = _root_with_notes()
    serve = private_tmp_dir("evalkit-escape-lab-")
    _notebook(serve / "escaping.ipynb")
    env = {"EVALKIT_ESCAPE_ROOT": str(root), "EVALKIT_ESCAPE_NOTE": NOTE}
    with serve_lab(serve, "escaping.ipynb", env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000, polling=250)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(".evk-calibration-widget table", timeout=90_000)
            page.wait_for_function("() => document.querySelectorAll('.evk').length === 4", timeout=30_000)
            page.wait_for_timeout(1000)  # let every widget render its last state

            # nothing from the data ran or became an element
            assert page.evaluate("() => window.__evk_xss") is None
            injected = ".evk script, .evk img, .evk-prompt *, .evk-calibration-widget script, .evk-calibration-widget img"
            assert page.locator(injected).count() == 0
            # ... and all of it is there, as text
            notes = page.locator(".evk-note").evaluate_all("els => els.map(e => e.value)")
            assert notes == [NOTE, NOTE, NOTE], notes  # queue, single review, blinded A/B (side by side has none)
            prompts = {t.removeprefix("prompt: ") for t in page.locator(".evk-prompt").all_inner_texts() if t}
            assert STREET_PROMPT in prompts and prompts <= {XSS_PROMPT, STREET_PROMPT}, prompts

            report = root / "report.html"
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            page.wait_for_timeout(500)
            assert page.evaluate("() => window.__evk_xss") is None
            text = page.locator("body").inner_text()
            assert XSS_PROMPT in text or STREET_PROMPT in text
            scripts = page.locator("script").evaluate_all("els => els.map(e => e.textContent)")
            assert not any("__evk_xss" in s for s in scripts)  # the prompts' <script> is text, not a script
            assert page.locator("img[src='x']").count() == 0
        finally:
            browser.close()
