"""Turning per-frame series into events: shared by every detector."""

from __future__ import annotations

import numpy as np

from evalkit._types import Event


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` of each run of True in a 1-D bool array."""
    padded = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2])]


def series_events(series: np.ndarray, level: float, max_gap: int, kind: str, min_length: int = 1) -> list[Event]:
    """Runs of frames with ``series > level`` (NaN never), joined across gaps of ``max_gap`` frames,
    keeping runs of at least ``min_length`` frames; each event scores the run's maximum."""
    above = np.flatnonzero(np.nan_to_num(series, nan=-np.inf) > level)
    if above.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(above) > max_gap + 1)
    starts = np.r_[above[0], above[breaks + 1]]
    ends = np.r_[above[breaks], above[-1]]
    return [
        Event(int(s), int(e), kind, float(np.nanmax(series[s : e + 1])))
        for s, e in zip(starts, ends)
        if e - s + 1 >= min_length
    ]
