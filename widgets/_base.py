"""The player every review widget is built on: one anywidget (``player.js``) showing 1-4 clips
with frame-accurate transport, detector score lanes, events, an optional map overlay and the
label controls of the widget's ``mode``.

State lives in traitlets; the page renders from it and sends user actions as messages
(``{"event": "verdict", "failure_mode": ...}``) that land in the same Python methods tests
call directly. Labels are written to the results store the moment they are made.
"""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path
from typing import Any, Callable

import anywidget
import traitlets
from ipywidgets.widgets.widget import CallbackDispatcher

from evalkit.widgets._data import Clip, ReviewData

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
RATES = (0.25, 0.5, 1.0, 1.5, 2.0)


def default_reviewer() -> str:
    """``$EVALKIT_REVIEWER``, else the login name."""
    try:
        return os.environ.get("EVALKIT_REVIEWER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "reviewer"


def open_data(root: str | Path | ReviewData, db: str | Path | None = None) -> ReviewData:
    """``root`` itself if already open, else the root with its store (``db``: see :class:`ReviewData`)."""
    return root if isinstance(root, ReviewData) else ReviewData(root, db=db)


class PlayerWidget(anywidget.AnyWidget):
    """Base of the review widgets (not used directly).

    Traits shared with the page: ``mode`` ("review", "compare", "ab"), ``clips`` (payloads of
    :meth:`ReviewData.clip_payload`), ``frame`` (of the first clip), ``playing``, ``rate``,
    ``show_overlay``, ``failure_modes`` (``[{key, meaning}]``; ``Shift+N`` labels the N-th),
    ``labels`` (this reviewer's labels on the shown clip), ``pending_span`` (``[]``,
    ``[start]`` or ``[start, end]``), ``note``, ``header``, ``status``.
    """

    _esm = _HERE / "player.js"
    _css = _HERE / "player.css"

    mode = traitlets.Unicode("review").tag(sync=True)
    clips = traitlets.List(traitlets.Dict()).tag(sync=True)
    frame = traitlets.Int(0).tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    rate = traitlets.Float(1.0).tag(sync=True)
    show_overlay = traitlets.Bool(False).tag(sync=True)
    failure_modes = traitlets.List(traitlets.Dict()).tag(sync=True)
    labels = traitlets.List(traitlets.Dict()).tag(sync=True)
    pending_span = traitlets.List(traitlets.Int()).tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    header = traitlets.Dict().tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    _events: tuple[str, ...] = ("seek", "label", "undo")

    def __init__(self, data: ReviewData, reviewer: str | None = None, failure_modes: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.reviewer = reviewer or default_reviewer()
        modes = failure_modes if failure_modes is not None else data.detectors()
        from evalkit.widgets._scoring import detector_info

        self.failure_modes = [{"key": m, "meaning": detector_info(m)["failure_mode"]} for m in modes]
        self._callbacks = {name: CallbackDispatcher() for name in self._events}
        self._undo_stack: list[list[int]] = []  # groups: one user action may store several labels
        self.on_msg(self._on_page_message)

    # events ------------------------------------------------------------------------------
    def _register(self, event: str, callback: Callable[..., Any], remove: bool) -> None:
        self._callbacks[event].register_callback(callback, remove=remove)

    def _fire(self, event: str, *args: Any) -> None:
        self._callbacks[event](*args)

    def on_seek(self, callback: Callable[[int], Any], remove: bool = False) -> None:
        """Call ``callback(frame)`` whenever the shown frame changes (page or Python)."""
        self._register("seek", callback, remove)

    def on_label(self, callback: Callable[[dict], Any], remove: bool = False) -> None:
        """Call ``callback(label)`` after each label is stored (``label`` has its ``id``)."""
        self._register("label", callback, remove)

    def on_undo(self, callback: Callable[[int], Any], remove: bool = False) -> None:
        """Call ``callback(label_id)`` after a label is removed by :meth:`undo`."""
        self._register("undo", callback, remove)

    @traitlets.observe("frame")
    def _frame_changed(self, change: dict) -> None:
        self._fire("seek", change["new"])

    # transport ---------------------------------------------------------------------------
    def _num_frames(self) -> int:
        return int(self.clips[0]["num_frames"]) if self.clips else 0

    def seek(self, frame: int) -> int:
        """Show ``frame`` (clamped to the clip) and return it."""
        self.frame = max(0, min(int(frame), max(0, self._num_frames() - 1)))
        return self.frame

    def step(self, frames: int) -> int:
        """Move ``frames`` frames forward (negative: back); pauses like a player does."""
        self.playing = False
        return self.seek(self.frame + frames)

    def play(self) -> None:
        self.playing = True

    def pause(self) -> None:
        self.playing = False

    def set_rate(self, rate: float) -> None:
        if rate not in RATES:
            raise ValueError(f"set_rate: expected one of {RATES}, got {rate!r}")
        self.rate = rate

    # labels ------------------------------------------------------------------------------
    def _write_label(self, clip: Clip, **fields: Any) -> dict[str, Any]:
        """Store one label on ``clip`` for this reviewer at once; returns it with its id."""
        # The payload always names the widget: provenance, and never an all-NULL payload column.
        payload = {"widget": type(self).__name__, **(fields.pop("payload", None) or {})}
        label = {"video_hash": clip.video_hash, "path": clip.path, "checkpoint": clip.checkpoint,
                 "prompt_id": clip.prompt_id, "reviewer": self.reviewer, **fields, "payload": payload}
        label["id"] = self.data.store.add_label(**label)
        self._undo_stack.append([label["id"]])
        self.status = f"saved {fields.get('kind')} label #{label['id']}"
        self._refresh_labels()
        self._fire("label", label)
        return label

    def _group_last(self, count: int) -> None:
        """Make the last ``count`` stored labels one undo step."""
        if count > 1:
            group = [i for ids in self._undo_stack[-count:] for i in ids]
            del self._undo_stack[-count:]
            self._undo_stack.append(group)

    def undo(self) -> list[int]:
        """Delete the labels of this widget's newest action; returns their ids ([]: nothing to undo)."""
        if not self._undo_stack:
            self.status = "nothing to undo"
            return []
        ids = self._undo_stack.pop()
        for label_id in ids:
            self.data.store.delete_label(label_id)
            self._fire("undo", label_id)
        self.status = "removed label " + ", ".join(f"#{i}" for i in ids)
        self._refresh_labels()
        return ids

    def _refresh_labels(self) -> None:
        """Re-read this reviewer's labels on the shown clip(s) into ``labels``."""
        hashes = {c.video_hash for c in self._shown()}
        frame = self.data.labels()
        mine = frame[frame["video_hash"].isin(hashes) & (frame["reviewer"] == self.reviewer)]
        keep = ["id", "video_hash", "kind", "failure_mode", "value", "start", "end", "note"]
        self.labels = [{k: _plain(v) for k, v in row.items()} for row in mine[keep].to_dict("records")]

    def _shown(self) -> list[Clip]:
        raise NotImplementedError

    # page messages -----------------------------------------------------------------------
    def _on_page_message(self, _widget: Any, content: dict, _buffers: list) -> None:
        if not isinstance(content, dict):
            return
        handler = getattr(self, f"_msg_{content.get('event')}", None)
        if handler is None:
            log.warning("%s: unknown message from the page: %r", type(self).__name__, content.get("event"))
            return
        try:
            handler(content)
        except (ValueError, KeyError, IndexError) as exc:  # a bad message must not kill the kernel comm
            self.status = f"error: {exc}"
            log.warning("%s: %s", type(self).__name__, exc)

    def handle_page_message(self, content: dict) -> None:
        """Process a message as if the page had sent it (what the browser does; used by tests)."""
        self._on_page_message(self, content, [])

    def _msg_undo(self, _content: dict) -> None:
        self.undo()


def _plain(value: Any) -> Any:
    """numpy/pandas scalars -> JSON-able Python values (NaN -> None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
