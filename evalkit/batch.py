"""``evalkit run`` / ``evalkit watch``: evaluate a checkpoint root, safely under a scheduler.

A lock file (``ROOT/.evalkit.lock``) keeps two runs from working on one root at once: the second
waits up to ``wait_s`` seconds, then exits with a clear message. New checkpoints are found on
every run; finished (video, detector, version, config) keys are skipped; a run killed midway
resumes where it stopped because each result is committed as soon as it exists.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from filelock import FileLock, Timeout

from evalkit.aggregate import Regression
from evalkit.errors import LayoutError, RootBusyError
from evalkit.layout import scan_root
from evalkit.root import RootResults, open_root
from evalkit.runner import Runner, resolve_detectors
from evalkit.store import open_store
from evalkit.video import DecodeOptions

log = logging.getLogger(__name__)

LOCK_NAME = ".evalkit.lock"


@dataclass
class RunSummary:
    root: Path
    computed: int = 0
    cached: int = 0
    errors: list[str] = field(default_factory=list)
    problems: list[LayoutError] = field(default_factory=list)
    regressions: list[Regression] = field(default_factory=list)
    summary: pd.DataFrame | None = None
    aggregates: pd.DataFrame | None = None
    report: Path | None = None
    view: RootResults | None = None  # the root's results after the run (what the report shows)

    @property
    def exit_code(self) -> int:
        """0 clean; 1 some inputs failed; 3 a regression was found (takes precedence)."""
        if self.regressions:
            return 3
        return 1 if self.errors or self.problems else 0


def run_root(
    root: str | Path,
    detectors: Sequence[str] | None = None,
    device: str = "cpu",
    workers: int | None = None,
    decode: DecodeOptions = DecodeOptions(),
    config: dict[str, dict[str, Any]] | None = None,
    db: str | Path | None = None,
    wait_s: float = 0.0,
    write_report: bool = True,
    progress: bool = False,
    on_outcome: Callable[[Any], None] | None = None,
    landmarks: str | None = None,
    engine: str = "local",
    address: str | None = None,
) -> RunSummary:
    """Evaluate every video under ``root`` (see :mod:`evalkit.layout`), resuming from the store;
    ``landmarks`` picks the face/pose backend (``"mediapipe"``, ``"litert"`` or ``"torch"``; None:
    torch on CUDA, else mediapipe). ``engine="ray"``
    decodes and scores on a Ray cluster (``address``); this process stays the store's one writer.

    Raises:
        RootBusyError: another run holds the lock for longer than ``wait_s``.
        LayoutError: ``root`` is not a directory.
        UnknownDetectorError: a detector name is unknown.
    """
    root = Path(root)
    instances = resolve_detectors(detectors, device=device, config=config)  # fail fast on typos
    layout = scan_root(root)
    lock = FileLock(str(root / LOCK_NAME))
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise RootBusyError(
            f"{root}: another `evalkit run` is working on this root (lock {root / LOCK_NAME}); "
            f"waited {wait_s:g} s. Use --wait SECONDS to wait longer."
        ) from None
    summary = RunSummary(root=root, problems=list(layout.problems))
    for problem in layout.problems:
        log.error("%s", problem)
    try:
        from evalkit.runner import landmark_options

        with open_store(db, root=root) as store, Runner(
            instances, decode=decode, workers=workers, landmark_options=landmark_options(landmarks, device),
            engine=engine, address=address,
        ) as runner:
            for outcome in runner.run(layout.items, store=store, progress=progress):
                if outcome.error:
                    summary.errors.append(outcome.error)
                elif outcome.cached:
                    summary.cached += 1
                else:
                    summary.computed += 1
                if on_outcome is not None:
                    on_outcome(outcome)
            view = open_root(root, store=store, layout=layout, detectors=[d.name for d in instances])
            summary.view = view
            summary.summary = view.summary
            summary.aggregates = view.aggregates
            summary.regressions = view.regressions
            if write_report:
                from evalkit.report import write_report as _write

                summary.report = _write(view)
    finally:
        lock.release()
    return summary


def run_hook(command: str, summary: RunSummary) -> int:
    """Run ``--on-regression`` without a shell; the regressions are passed in the environment."""
    import os

    env = dict(os.environ)
    env["EVALKIT_ROOT"] = str(summary.root)
    env["EVALKIT_REGRESSIONS"] = "\n".join(r.message() for r in summary.regressions)
    return subprocess.call(shlex.split(command), env=env)


def parse_interval(text: str) -> float:
    """``"10m"`` -> 600.0; units s, m, h; a bare number is seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    try:
        if text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except (ValueError, IndexError):
        raise ValueError(f"interval: expected a number with unit s, m or h (e.g. 10m), got {text!r}") from None
    if value <= 0:
        raise ValueError(f"interval: expected > 0, got {text!r}")
    return value


def watch(
    root: str | Path, every_s: float, iterations: int | None = None,
    on_summary: Callable[[RunSummary], None] | None = None, **run_kwargs: Any,
) -> None:
    """Call :func:`run_root` every ``every_s`` seconds (forever, or ``iterations`` times)."""
    done = 0
    while iterations is None or done < iterations:
        started = time.monotonic()
        try:
            result = run_root(root, **run_kwargs)
            log.info("%s: %d computed, %d already stored, %d errors", root, result.computed, result.cached, len(result.errors))
            if on_summary is not None:
                on_summary(result)
        except RootBusyError as exc:
            log.warning("%s", exc)
        done += 1
        if iterations is not None and done >= iterations:
            break
        time.sleep(max(0.0, every_s - (time.monotonic() - started)))
