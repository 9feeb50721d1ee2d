"""Progress of a long run: clips done / total, clips/s and ETA, in a terminal or a notebook.

Both engines count a clip as done when its last detector has an outcome (computed, already
stored or failed), so the bar moves the same way whichever engine runs.
"""

from __future__ import annotations

from typing import Any


class _NoProgress:
    """Stands in for a bar when progress is off, so callers never test for one."""

    n = 0

    def update(self, clips: int = 1) -> None:
        self.n += clips

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clip_progress(total: int, enabled: bool = True, desc: str = "evalkit", **tqdm_options: Any) -> Any:
    """A context-managed bar over ``total`` clips: ``12/40 clips [00:06<00:14, 2.0 clip/s]``.

    ``tqdm.auto`` picks the notebook widget inside Jupyter and text elsewhere; ``enabled=False``
    gives a bar that counts and draws nothing. ``bar.update(n)`` marks ``n`` more clips done.
    """
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    options = {"unit": "clip", "desc": desc, "dynamic_ncols": True, "smoothing": 0.1, **tqdm_options}
    return tqdm(total=total, **options)
