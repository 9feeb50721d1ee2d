"""Reviewing one clip at a time: :class:`VideoReview` (a list of clips) and :class:`ReviewQueue`
(the clip the detectors are least sure about next).

Labels a reviewer makes (all stored at once, with reviewer id and time):
  - clip verdict: ``kind="clip"``, ``failure_mode`` (a detector name), ``value`` "pass"/"fail";
  - span: ``kind="span"``, ``start``/``end`` frames (inclusive), ``failure_mode``, ``value="fail"``;
  - note: ``kind="note"``, ``note``;
  - submit: ``kind="review"``, ``value="done"``, the note and the verdicts in ``payload``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from evalkit.errors import LayoutError
from evalkit.widgets._base import PlayerWidget, open_data
from evalkit.widgets._data import Clip, ReviewData
from evalkit.widgets._scoring import VERDICTS, queue_priority


class VideoReview(PlayerWidget):
    """Review clips of a checkpoint root one by one, frame-accurately, with their detector
    lanes, events and (optionally) a detector's map overlaid.

    Args:
        root: the checkpoint root (or an open :class:`ReviewData`).
        db: the store when ``root`` is a path (default ``$EVALKIT_DB``, else ``ROOT/evalkit.db``).
        videos: paths to review, in order (default: every scored clip, in checkpoint order).
        checkpoint: only this checkpoint's clips (when ``videos`` is None).
        reviewer: who labels (default ``$EVALKIT_REVIEWER`` or the login name).
        failure_modes: label keys, ``Shift+1``.. in order (default: the detectors with results).
        overlay: detector whose maps to overlay (default: the first that has maps).

    Keys in the page: ``?`` lists them. Python does everything the keys do:
    :meth:`seek`, :meth:`step`, :meth:`toggle_verdict`, :meth:`mark_in`, :meth:`mark_out`,
    :meth:`add_span`, :meth:`save_note`, :meth:`submit`, :meth:`undo`, :meth:`next_clip`.
    """

    _events = ("seek", "label", "undo", "submit", "clip")

    def __init__(self, root: str | Path | ReviewData, videos: Sequence[str | Path] | None = None,
                 checkpoint: str | None = None, reviewer: str | None = None,
                 failure_modes: list[str] | None = None, overlay: str | None = None, start: int = 0,
                 db: str | Path | None = None) -> None:
        data = open_data(root, db)
        super().__init__(data, reviewer=reviewer, failure_modes=failure_modes, mode="review")
        self.overlay = overlay
        self.videos: list[Clip] = data.clips(checkpoint) if videos is None else [data.clip(v) for v in videos]
        if not self.videos:
            raise LayoutError(str(data.root), "expected scored videos to review, got none")
        self.index = -1
        self.show(self._initial_index(start))

    def _initial_index(self, start: int) -> int:
        return start

    # events ------------------------------------------------------------------------------
    def on_submit(self, callback: Callable[[dict], Any], remove: bool = False) -> None:
        """Call ``callback(label)`` when a clip's review is submitted."""
        self._register("submit", callback, remove)

    def on_clip(self, callback: Callable[[Clip], Any], remove: bool = False) -> None:
        """Call ``callback(clip)`` when another clip is shown."""
        self._register("clip", callback, remove)

    # navigation --------------------------------------------------------------------------
    @property
    def current(self) -> Clip:
        return self.videos[self.index]

    def _shown(self) -> list[Clip]:
        return [self.current] if self.index >= 0 else []

    def show(self, which: int | str | Path) -> Clip:
        """Show clip number ``which`` (or the clip at that path)."""
        if isinstance(which, (str, Path)):
            paths = [c.path for c in self.videos]
            if str(which) not in paths:
                raise ValueError(f"show: expected one of this widget's videos, got {str(which)!r}")
            which = paths.index(str(which))
        if not 0 <= which < len(self.videos):
            raise IndexError(f"show: expected a clip index in 0..{len(self.videos) - 1}, got {which}")
        self.index = which
        self.playing = False
        self.pending_span = []
        with self.hold_sync():
            self.clips = [self.data.clip_payload(self.current, overlay=self.overlay)]
            self.frame = 0
            self._refresh_labels()
            notes = [x["note"] for x in self.labels if x["kind"] in ("note", "review") and x.get("note")]
            self.note = notes[-1] if notes else ""
            self._update_header()
        self._fire("clip", self.current)
        return self.current

    def next_clip(self) -> Clip | None:
        """Show the next clip; None (and a status line) at the end."""
        if self.index + 1 >= len(self.videos):
            self.status = "last clip"
            return None
        return self.show(self.index + 1)

    def prev_clip(self) -> Clip | None:
        if self.index == 0:
            self.status = "first clip"
            return None
        return self.show(self.index - 1)

    def _reviewed_hashes(self) -> set[str]:
        labels = self.data.labels()
        done = labels[(labels["kind"] == "review") & (labels["reviewer"] == self.reviewer)]
        return set(done["video_hash"])

    def _update_header(self) -> None:
        done = self._reviewed_hashes()
        self.header = {"position": [self.index + 1, len(self.videos)],
                       "reviewed": [sum(c.video_hash in done for c in self.videos), len(self.videos)]}

    # labels ------------------------------------------------------------------------------
    def _check_mode(self, failure_mode: str) -> str:
        keys = [m["key"] for m in self.failure_modes]
        if failure_mode not in keys:
            raise ValueError(f"expected a failure mode in {keys}, got {failure_mode!r}")
        return failure_mode

    @property
    def verdicts(self) -> dict[str, str]:
        """This reviewer's newest verdict per failure mode on the shown clip."""
        out: dict[str, str] = {}
        for label in self.labels:  # oldest first: newer ones overwrite
            if label["kind"] == "clip" and label["video_hash"] == self.current.video_hash:
                out[label["failure_mode"]] = label["value"]
        return out

    def set_verdict(self, failure_mode: str, value: str) -> dict[str, Any]:
        """Store "pass" or "fail" for ``failure_mode`` on the shown clip."""
        if value not in VERDICTS:
            raise ValueError(f"expected a verdict in {VERDICTS}, got {value!r}")
        return self._write_label(self.current, kind="clip", failure_mode=self._check_mode(failure_mode), value=value)

    def toggle_verdict(self, failure_mode: str) -> dict[str, Any]:
        """Fail ``failure_mode`` on the shown clip; if it is already failed, pass it."""
        return self.set_verdict(failure_mode, "pass" if self.verdicts.get(failure_mode) == "fail" else "fail")

    def mark_in(self, frame: int | None = None) -> None:
        """Start a span at ``frame`` (default: the shown frame)."""
        self.pending_span = [self.frame if frame is None else int(frame)]

    def mark_out(self, frame: int | None = None) -> None:
        """End the pending span at ``frame`` (default: the shown frame); with no start, the span
        starts at frame 0."""
        end = self.frame if frame is None else int(frame)
        start = self.pending_span[0] if self.pending_span else 0
        self.pending_span = sorted([start, end])

    def add_span(self, start: int, end: int, failure_mode: str) -> dict[str, Any]:
        """Store a span label: ``failure_mode`` is visible in frames ``start``..``end`` (inclusive)."""
        last = max(0, self._num_frames() - 1)
        start, end = sorted((int(start), int(end)))
        if start < 0 or end > last:
            raise ValueError(f"add_span: expected frames within 0..{last}, got {start}..{end}")
        self.pending_span = []
        return self._write_label(self.current, kind="span", failure_mode=self._check_mode(failure_mode),
                                 value="fail", start=start, end=end)

    def label_key(self, number: int) -> dict[str, Any]:
        """What ``Shift+number`` does: label failure mode ``number`` (1-based) as a span if a span
        is pending (to the shown frame if only its start is set), else toggle its clip verdict."""
        if not 1 <= number <= len(self.failure_modes):
            raise ValueError(f"label_key: expected 1..{len(self.failure_modes)}, got {number}")
        failure_mode = self.failure_modes[number - 1]["key"]
        if self.pending_span:
            start = self.pending_span[0]
            end = self.pending_span[1] if len(self.pending_span) > 1 else self.frame
            return self.add_span(start, end, failure_mode)
        return self.toggle_verdict(failure_mode)

    def save_note(self, text: str) -> dict[str, Any] | None:
        """Store a free-text note on the shown clip (empty or unchanged text stores nothing)."""
        text = str(text)
        previous = [x["note"] for x in self.labels if x["kind"] == "note" and x["video_hash"] == self.current.video_hash]
        self.note = text
        if not text.strip() or (previous and previous[-1] == text):
            return None
        return self._write_label(self.current, kind="note", note=text)

    def submit(self) -> dict[str, Any]:
        """Mark the shown clip reviewed (with the note and verdicts), then go to the next clip."""
        label = self._write_label(self.current, kind="review", value="done", note=self.note or None,
                                  payload={"verdicts": self.verdicts})
        self._fire("submit", label)
        self._update_header()
        self.next_clip()
        return label

    # page messages -----------------------------------------------------------------------
    def _msg_seek(self, content: dict) -> None:
        self.seek(int(content["frame"]))

    def _msg_verdict(self, content: dict) -> None:
        self.toggle_verdict(str(content["failure_mode"]))

    def _msg_label_key(self, content: dict) -> None:
        if "frame" in content:
            self.frame = int(content["frame"])
        self.label_key(int(content["number"]))

    def _msg_mark_in(self, content: dict) -> None:
        self.mark_in(content.get("frame"))

    def _msg_mark_out(self, content: dict) -> None:
        self.mark_out(content.get("frame"))

    def _msg_clear_span(self, _content: dict) -> None:
        self.pending_span = []

    def _msg_note(self, content: dict) -> None:
        self.save_note(str(content.get("text", "")))

    def _msg_submit(self, _content: dict) -> None:
        self.submit()

    def _msg_next(self, _content: dict) -> None:
        self.next_clip()

    def _msg_prev(self, _content: dict) -> None:
        self.prev_clip()


class ReviewQueue(VideoReview):
    """Review clips in the order that teaches the detectors most: next is the unreviewed clip
    with the highest priority (see :func:`evalkit.widgets._scoring.queue_priority`: detectors
    near their threshold, weighted by how often they disagreed with earlier labels).

    Args:
        root, reviewer, failure_modes, overlay: as for :class:`VideoReview`.
        checkpoint: only this checkpoint's clips.
        thresholds: ``{detector: threshold}`` overriding the ones recovered from the store
            (e.g. :attr:`Calibration.thresholds`).
        per_reviewer: a clip counts as reviewed only when this reviewer submitted it (default:
            when anyone did).
    """

    def __init__(self, root: str | Path | ReviewData, reviewer: str | None = None, checkpoint: str | None = None,
                 thresholds: dict[str, float] | None = None, failure_modes: list[str] | None = None,
                 overlay: str | None = None, per_reviewer: bool = False, db: str | Path | None = None) -> None:
        self.thresholds = dict(thresholds or {})
        self.per_reviewer = per_reviewer
        self._history: list[int] = []
        super().__init__(root, checkpoint=checkpoint, reviewer=reviewer, failure_modes=failure_modes, overlay=overlay,
                         db=db)

    def _reviewed_hashes(self) -> set[str]:
        labels = self.data.labels()
        done = labels[labels["kind"] == "review"]
        if self.per_reviewer:
            done = done[done["reviewer"] == self.reviewer]
        return set(done["video_hash"])

    def ranked(self) -> pd.DataFrame:
        """Unreviewed clips, highest priority first: path, checkpoint, prompt_id, priority, reason."""
        results = self.data.results()
        priority = queue_priority(results, self.data.labels(), self.thresholds)
        clips = pd.DataFrame([{"index": i, "path": c.path, "video_hash": c.video_hash, "checkpoint": c.checkpoint,
                               "prompt_id": c.prompt_id} for i, c in enumerate(self.videos)])
        done = self._reviewed_hashes()
        table = clips[~clips["video_hash"].isin(done)].merge(priority, on="video_hash", how="left")
        table["priority"] = table["priority"].fillna(0.0)
        return table.sort_values(["priority", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)

    @property
    def progress(self) -> tuple[int, int]:
        """``(reviewed, total)`` clips."""
        done = self._reviewed_hashes()
        return sum(c.video_hash in done for c in self.videos), len(self.videos)

    def _initial_index(self, start: int) -> int:
        ranked = self.ranked()
        return int(ranked["index"].iloc[0]) if len(ranked) else start

    def _update_header(self) -> None:
        super()._update_header()
        self.header = {**self.header, "reviewed": list(self.progress), "queue": True}

    def next_clip(self) -> Clip | None:
        """Show the highest-priority unreviewed clip other than the shown one."""
        ranked = self.ranked()
        ranked = ranked[ranked["index"] != self.index]
        if ranked.empty:
            self.status = "queue finished: every clip is reviewed"
            self._update_header()
            return None
        self._history.append(self.index)
        return self.show(int(ranked["index"].iloc[0]))

    def prev_clip(self) -> Clip | None:
        """Go back to the clip shown before this one."""
        if not self._history:
            self.status = "first clip of this session"
            return None
        return self.show(self._history.pop())
