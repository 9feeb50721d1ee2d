"""How well each detector agrees with the human labels, and at which threshold: the loop from
review back to the detectors."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W
import numpy as np
import pandas as pd
from ipywidgets.widgets.widget import CallbackDispatcher

from evalkit.widgets._base import open_data
from evalkit.widgets._data import ReviewData
from evalkit.widgets._scoring import calibration_table, detector_info


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3g}"
    return html.escape(str(value))


def metrics_html(table: pd.DataFrame, selected: str | None = None) -> str:
    """The calibration table as escaped HTML (the selected detector's row in bold)."""
    columns = ["detector", "threshold", "labelled", "human_fails", "tp", "fp", "fn", "tn", "precision", "recall", "f1",
               "best_threshold", "best_f1"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for record in table.to_dict("records"):
        style = ' style="font-weight:bold"' if record["detector"] == selected else ""
        threshold = record["threshold"]
        record["threshold"] = "own verdicts" if isinstance(threshold, float) and math.isnan(threshold) else threshold
        rows.append(f"<tr{style}>" + "".join(f"<td>{_cell(record[c])}</td>" for c in columns) + "</tr>")
    return (f'<table class="evk-calibration"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            "<p style='font-size:12px;color:#666'>Human verdicts: clip pass/fail and spans per failure mode "
            "(majority over reviewers). threshold 'own verdicts': the detector's stored flags.</p>")


class Calibration(W.VBox):
    """Precision, recall and F1 of each detector against the human labels so far, with a
    threshold slider per detector and the F1-best threshold to adopt.

    Python API: :meth:`metrics`, :meth:`set_threshold`, :meth:`use_best`, :meth:`reset`,
    :meth:`refresh` (re-read labels), :attr:`thresholds`, ``on_threshold(callback)``.
    """

    def __init__(self, root: str | Path | ReviewData, detectors: list[str] | None = None,
                 db: str | Path | None = None) -> None:
        self.data = open_data(root, db)
        self._results = self.data.results()
        self.detectors = detectors if detectors is not None else self.data.detectors()
        self.thresholds: dict[str, float] = {}
        self._labels = self.data.labels()
        self._callbacks = CallbackDispatcher()
        self._picker = W.Dropdown(options=self.detectors, description="detector")
        self._slider = W.FloatSlider(description="threshold", continuous_update=False, readout_format=".3g",
                                     layout=W.Layout(width="420px"))
        self._best = W.Button(description="use best-F1 threshold")
        self._reset = W.Button(description="detector's own verdicts")
        self._reload = W.Button(description="reload labels")
        self._meaning = W.HTML()
        self._table = W.HTML()
        super().__init__([W.HBox([self._picker, self._reload]), self._meaning,
                          W.HBox([self._slider, self._best, self._reset]), self._table])
        self.add_class("evk-calibration-widget")
        self._syncing = False
        self._picker.observe(lambda _: self._show_detector(), "value")
        self._slider.observe(self._slider_moved, "value")
        self._best.on_click(lambda _: self.use_best(self._picker.value))
        self._reset.on_click(lambda _: self.reset(self._picker.value))
        self._reload.on_click(lambda _: self.refresh())
        self._show_detector()

    def on_threshold(self, callback: Callable[[str, float | None], Any], remove: bool = False) -> None:
        """Call ``callback(detector, threshold)`` when a threshold changes (None: back to the
        detector's own verdicts)."""
        self._callbacks.register_callback(callback, remove=remove)

    def metrics(self) -> pd.DataFrame:
        """See :func:`evalkit.widgets._scoring.calibration_table`."""
        table = calibration_table(self._results, self._labels, self.thresholds)
        return table[table["detector"].isin(self.detectors)].reset_index(drop=True)

    def set_threshold(self, detector: str, value: float) -> pd.Series:
        """Judge ``detector`` at ``value``; returns its row of :meth:`metrics`."""
        if detector not in self.detectors:
            raise ValueError(f"set_threshold: expected a detector in {self.detectors}, got {detector!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"set_threshold: expected a finite threshold, got {value!r}")
        self.thresholds[detector] = float(value)
        self._callbacks(detector, float(value))
        self._render()
        return self.metrics().set_index("detector").loc[detector]

    def use_best(self, detector: str) -> float | None:
        """Adopt the F1-best threshold found on the labels so far (None if there is none yet)."""
        best = self.metrics().set_index("detector").loc[detector, "best_threshold"]
        if not np.isfinite(best):
            self._meaning.value += "<br><i>no labelled failures yet: no best threshold</i>"
            return None
        self.set_threshold(detector, float(best))
        return float(best)

    def reset(self, detector: str) -> None:
        """Go back to the detector's own verdicts."""
        self.thresholds.pop(detector, None)
        self._callbacks(detector, None)
        self._render()

    def refresh(self) -> pd.DataFrame:
        """Re-read results and labels from the store (after a review session); returns :meth:`metrics`."""
        self.data.refresh()
        self._results = self.data.results()
        self._labels = self.data.labels()
        self._show_detector()
        return self.metrics()

    def _show_detector(self) -> None:
        name = self._picker.value
        if name is None:
            self._table.value = "<p>No detector results under this root.</p>"
            return
        info = detector_info(name)
        scores = self._results.loc[self._results["detector"] == name, "score"].to_numpy(float)
        scores = scores[np.isfinite(scores)]
        low, high = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 1.0)
        if high <= low:
            low, high = low - 0.5, high + 0.5
        self._syncing = True
        try:
            self._slider.min, self._slider.max = -1e300, 1e300  # widen first: min may not pass max
            self._slider.min, self._slider.max = low, high
            self._slider.step = (high - low) / 200
            self._slider.value = self.thresholds.get(name, (low + high) / 2)
        finally:
            self._syncing = False
        worse = "higher" if info["higher_is_worse"] else "lower"
        self._meaning.value = (f"<b>{html.escape(name)}</b>: {html.escape(info['score_meaning'])} "
                               f"({worse} is worse)")
        self._render()

    def _slider_moved(self, change: dict) -> None:
        if not self._syncing and self._picker.value is not None:
            self.set_threshold(self._picker.value, change["new"])

    def _render(self) -> None:
        self._table.value = metrics_html(self.metrics(), self._picker.value)
