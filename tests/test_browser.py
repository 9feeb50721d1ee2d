"""The review notebook in a real JupyterLab, driven by Playwright in Debian's Chromium: the
widgets render, the timeline seeks the video to the clicked frame, label keys store labels
(and do not trigger JupyterLab's own shortcuts), prompt text cannot inject HTML. Saves a
screenshot to ``test-artifacts/review_browser.png``.

Skipped when chromium (``tests/setup_browser.sh`` installs it) or playwright is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from evalkit.store import SQLiteStore
from test_widgets import STREET_PROMPT, XSS_PROMPT, private_tmp_dir, shared_review_root

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
REVIEWER = "browser-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_chromium() -> str:
    """Debian's chromium, or skip (also when the playwright package is missing)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (tests/setup_browser.sh installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    return chromium


@contextmanager
def serve_lab(serve: Path, notebook: str, env: dict[str, str]) -> Iterator[str]:
    """A JupyterLab on 127.0.0.1 serving ``serve``; yields the URL that opens ``notebook`` there."""
    news = serve / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no "news?" toast over the screenshot
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, **env, "JUPYTER_RUNTIME_DIR": str(serve / ".runtime")}
    log = open(serve / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={serve}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={serve / '.settings'}", f"--LabApp.workspaces_dir={serve / '.workspaces'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=serve, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start:\n{(serve / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}&reset"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def lab() -> Iterator[dict]:
    """A JupyterLab on 127.0.0.1 serving a temp folder with the review notebook and a scored root."""
    chromium = find_chromium()
    serve = private_tmp_dir("evalkit-lab-")
    root = shared_review_root()
    shutil.copy(REPO / "notebooks" / "03_review_session.ipynb", serve / "review.ipynb")
    with serve_lab(serve, "review.ipynb", {"EVALKIT_DEMO_ROOT": str(root), "EVALKIT_REVIEWER": REVIEWER}) as url:
        yield {"url": url, "root": root, "chromium": chromium}


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && w.content && w.content.widgets.length > 0;
}"""


def test_review_notebook_in_jupyterlab(lab: dict) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=lab["chromium"], args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(lab["url"])
            page.wait_for_function(KERNEL_IDLE, timeout=60_000, polling=250)
            cell_types = "() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => c.model.type).join(',')"
            before = page.evaluate(cell_types)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(".evk-calibration-widget table", timeout=60_000)
            assert page.locator(".evk").count() == 3  # queue, side by side, blinded A/B

            queue = page.locator(".evk").first
            video = queue.locator("video")
            page.wait_for_function("v => v.readyState >= 2 && v.duration > 0", arg=video.element_handle(), timeout=20_000)
            frame_el = queue.locator(".evk-frame")
            assert frame_el.get_attribute("data-frame") == "0"
            total = int(frame_el.get_attribute("data-last")) + 1

            def click_timeline(fraction: float) -> int:
                """Click the middle of the frame at ``fraction`` of the timeline; returns that frame."""
                expected = int(fraction * total)
                box = queue.locator(".evk-timeline").bounding_box()
                queue.locator(".evk-timeline").click(position={"x": box["width"] * (expected + 0.5) / total,
                                                               "y": box["height"] / 2})
                page.wait_for_function("([el, f]) => el.dataset.frame === String(f)",
                                       arg=[frame_el.element_handle(), expected], timeout=10_000)
                return expected

            start = click_timeline(0.3)
            shown = page.evaluate("([v, n]) => Math.floor(v.currentTime / v.duration * n)",
                                  [video.element_handle(), total])
            assert shown == start  # the video itself is at the clicked frame
            page.keyboard.press("BracketLeft")
            end = click_timeline(0.6)
            page.keyboard.press("BracketRight")
            page.keyboard.press("Shift+Digit1")  # label the marked span with failure mode 1
            page.keyboard.press("Digit5")  # seek to 50 %; in JupyterLab's command mode "5" would make a heading
            page.wait_for_function("([el, f]) => el.dataset.frame === String(f)",
                                   arg=[frame_el.element_handle(), total // 2], timeout=10_000)
            page.keyboard.press("Shift+Digit2")  # clip verdict: failure mode 2 fails

            deadline = time.monotonic() + 30  # the kernel may be slow on a busy machine
            while True:
                with SQLiteStore.for_root(lab["root"]) as store:
                    everyone = store.labels_frame()
                labels = everyone[everyone["reviewer"] == REVIEWER]
                if set(labels["kind"]) >= {"span", "clip"} or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            span = labels[labels["kind"] == "span"]
            assert span[["start", "end"]].values.tolist() == [[start, end]], everyone.to_string()
            assert labels[labels["kind"] == "clip"]["value"].tolist() == ["fail"]
            modes = set(labels["failure_mode"])
            assert len(modes) == 2

            assert page.evaluate(cell_types) == before  # no JupyterLab shortcut changed a cell
            assert page.evaluate("() => window.__evk_xss") is None  # the prompt's <img onerror> did not run
            prompts = [t for t in page.locator(".evk-prompt").all_inner_texts() if t]
            assert prompts and all(t.removeprefix("prompt: ") in (XSS_PROMPT, STREET_PROMPT) for t in prompts)
            assert page.locator(".evk-prompt *, .evk script, .evk img").count() == 0  # shown as text, not parsed
            page.keyboard.press("o")  # the test detector's maps over the video
            assert queue.locator(".evk-overlay").is_visible()
            queue.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "review_browser.png"))
            page.keyboard.press("Shift+Slash")  # "?" opens the key list
            assert queue.locator(".evk-help").is_visible()

            compare = page.locator(".evk").nth(1)  # side by side: Space plays all panels in step
            compare.locator(".evk-header").click()
            state = lambda: compare.locator("video").evaluate_all("vs => vs.map(v => [v.currentTime, v.paused])")  # noqa: E731
            page.keyboard.press("Space")
            deadline = time.monotonic() + 15  # playing: wait on the videos, not a fixed time (a loaded machine starts slowly)
            while min(t for t, _ in state()) < 0.3 and time.monotonic() < deadline:
                page.wait_for_timeout(100)
            page.keyboard.press("Space")
            deadline = time.monotonic() + 5
            while not all(paused for _, paused in state()) and time.monotonic() < deadline:
                page.wait_for_timeout(100)
            times = state()
            assert len(times) == 3 and all(paused for _, paused in times)
            assert times[0][0] > 0.2 and max(t for t, _ in times) - min(t for t, _ in times) < 0.1
            compare.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "review_browser_compare.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "review_browser_failure.png"))
            (ARTIFACTS / "review_browser_failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
