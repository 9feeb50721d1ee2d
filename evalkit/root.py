"""A checkpoint root's results in one place: the layout, the checkpoint order, the stored results
of the videos present, and what follows from them (per-checkpoint summary, detector aggregates,
regressions).

Everything that reads a root goes through :func:`open_root`: ``evalkit run`` (its summary and
regression exit code), ``report.html``, the review widgets and the notebooks. Detector facts
(direction, aggregates) come from :func:`evalkit.registry.detector_facts`.

::

    view = open_root("demo")
    view.order                 # checkpoint names by step, then stage, then name
    view.results               # latest stored result per (video, detector) of videos present
    view.summary               # n, mean [95 % CI], flagged rate per (checkpoint, detector)
    view.aggregates            # checkpoint-level verdicts detectors define (blinks per face-minute)
    view.regressions           # checkpoints significantly worse than the one before
    view.paired                # paired scores against the previous checkpoint on shared clips
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.aggregate import (
    Regression,
    checkpoint_order,
    detector_aggregates,
    find_regressions,
    paired_comparisons,
    summarize,
)
from evalkit.layout import RootLayout, scan_root
from evalkit.registry import detector_facts
from evalkit.store import SQLStore, open_store

CHECKPOINT_COLUMNS = ["name", "step", "stage"]


def checkpoints_frame(layout: RootLayout) -> pd.DataFrame:
    """One row per checkpoint of ``layout``: columns name, step, stage."""
    return pd.DataFrame([{"name": c.name, "step": c.step, "stage": c.stage} for c in layout.checkpoints],
                        columns=CHECKPOINT_COLUMNS)


@dataclass
class RootResults:
    """A checkpoint root as read from its store (see :func:`open_root`).

    Attributes:
        root: the root folder.
        layout: what :func:`evalkit.layout.scan_root` found (checkpoints, items, prompts, problems).
        checkpoints: columns name, step, stage.
        order: checkpoint names in curriculum order.
        results: latest stored result per (video, detector) of the videos present under the
            root (columns of :meth:`evalkit.store.SQLStore.results_frame`).
        errors: stored error records.
    """

    root: Path
    layout: RootLayout
    checkpoints: pd.DataFrame
    order: list[str]
    results: pd.DataFrame
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per (checkpoint, detector): n, skipped, mean, ci_low, ci_high, flagged_rate."""
        return summarize(self.results, self.order)

    @cached_property
    def aggregates(self) -> pd.DataFrame:
        """Checkpoint-level aggregates that detectors define (one row per checkpoint, detector)."""
        return detector_aggregates(self.results, self.order)

    @cached_property
    def regressions(self) -> list[Regression]:
        """Checkpoints significantly worse than the previous one, per detector, in each
        detector's own direction (stills are not compared with videos)."""
        directions = {d: detector_facts(d).higher_is_worse for d in self.results["detector"].unique()}
        stages = {c.name: c.stage for c in self.layout.checkpoints}
        return find_regressions(self.results, self.order, directions, stages=stages, paired_scores=self._paired_scores)

    @cached_property
    def paired(self) -> pd.DataFrame:
        """For detectors with a paired score (``expression``): each checkpoint against the previous
        one on the clips both have (same prompt id and seed): paired, mean [ci_low, ci_high], worse."""
        stages = {c.name: c.stage for c in self.layout.checkpoints}
        return paired_comparisons(self.results, self.order, self._paired_scores, stages=stages)

    @property
    def _paired_scores(self) -> dict:
        facts = {d: detector_facts(d) for d in self.results["detector"].unique()}
        return {d: f.paired_score for d, f in facts.items() if f.paired_score is not None}

    @property
    def detectors(self) -> list[str]:
        """Detectors with results under this root, sorted."""
        return sorted(self.results["detector"].unique())

    def worst_clips(self, detector: str, n: int = 6) -> pd.DataFrame:
        """The ``n`` worst clips of ``detector``, in its own direction."""
        part = self.results[self.results["detector"] == detector].dropna(subset=["score"])
        return part.sort_values("score", ascending=not detector_facts(detector).higher_is_worse).head(n)

    def figures(self) -> list[Any]:
        """Plotly figures: trends across steps coloured by stage (with CIs), score distributions."""
        from evalkit._figures import figures

        return figures(self.summary, self.results, self.checkpoints)

    def _repr_html_(self) -> str:
        return self.summary.to_html(index=False, float_format=lambda v: f"{v:.4g}")


def open_root(
    root: str | Path,
    store: SQLStore | None = None,
    layout: RootLayout | None = None,
    detectors: Sequence[str] | None = None,
    db: str | Path | None = None,
) -> RootResults:
    """Read a checkpoint root and its results store.

    Args:
        root: the checkpoint root.
        store: an open store (default: the one ``db`` names, opened and closed here).
        layout: an already scanned layout (default: scan ``root`` now).
        detectors: keep only these detectors' results (default: all stored).
        db: a SQLite path or ``postgresql://`` URL when no ``store`` is given (default
            ``$EVALKIT_DB``, else ``ROOT/evalkit.db``; see :func:`evalkit.store.open_store`).

    Raises:
        LayoutError: ``root`` is not a directory, or has no store to read.
        StoreError: the store cannot be opened.
    """
    root = Path(root)
    layout = layout or scan_root(root)
    own_store = store is None
    store = store or open_store(db, root=root, create=False)
    try:
        results = store.results_frame()
        errors = store.errors_frame()
    finally:
        if own_store:
            store.close()
    present = {item.path for item in layout.items}
    results = results[results["video"].isin(present)]
    if detectors is not None:
        results = results[results["detector"].isin(set(detectors))]
    results = results.reset_index(drop=True)
    checkpoints = checkpoints_frame(layout)
    return RootResults(root=root, layout=layout, checkpoints=checkpoints, order=checkpoint_order(checkpoints),
                       results=results, errors=errors)
