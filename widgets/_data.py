"""What the review widgets read from a checkpoint root: clips, their stored results, and the
browser copies of the videos.

Browser copies: each clip is decoded exactly as the runner decoded it for the detectors (same
frame sampling, so frame ``t`` of the copy is entry ``t`` of every stored series), encoded
once to H.264 yuv420p with PyAV, and cached under ``ROOT/.evalkit_cache/browser/`` keyed by the
video's content hash. The widgets send the bytes to the page, which plays them from a blob URL:
the whole file is in memory, so seeking to any frame works without a range-serving endpoint.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import LayoutError
from evalkit.root import RootResults, open_root
from evalkit.store import SQLStore, open_store
from evalkit.video import DecodeOptions, decode_video, write_video

from evalkit.widgets._scoring import detector_info

log = logging.getLogger(__name__)

CACHE_DIR_NAME = ".evalkit_cache"
BROWSER_MAX_SIDE = 480


@dataclass(frozen=True)
class Clip:
    """One video of the root as the widgets show it.

    ``num_frames`` and ``fps`` describe the frames the detectors saw (None when the store does
    not know them; then they come from the stored series and the file).
    """

    path: str
    video_hash: str
    checkpoint: str | None
    prompt_id: str | None
    seed: int | None
    prompt: str | None
    num_frames: int | None
    fps: float | None


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    # JSON has no NaN: the page gets null where a series is undefined.
    return [None if not math.isfinite(v) else float(f"{v:.5g}") for v in np.asarray(values, np.float64).tolist()]


def browser_copy(clip: Clip, cache_dir: Path, max_side: int = BROWSER_MAX_SIDE) -> Path:
    """Path of the H.264 copy of ``clip`` for the browser, encoding it on first use.

    The copy has the frames the detectors scored (``clip.fps`` sampling, at most
    ``clip.num_frames`` frames), so frame indices in results address it directly.
    """
    fps_tag = "native" if clip.fps is None else f"{clip.fps:.4f}"
    target = cache_dir / f"{clip.video_hash}_{max_side}_{fps_tag}_{clip.num_frames or 'all'}.mp4"
    if target.is_file():
        return target
    video = decode_video(clip.path, DecodeOptions(max_side=max_side, max_frames=clip.num_frames, target_fps=clip.fps),
                         digest=clip.video_hash)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}.partial.mp4")
    write_video(partial, video.frames, video.fps)
    partial.replace(target)  # another kernel encoding the same clip ends with the same bytes
    log.debug("%s: browser copy %s (%d frames)", clip.path, target, video.num_frames)
    return target


def overlay_bytes(maps: np.ndarray) -> tuple[bytes, list[int]]:
    """``(T, h, w)`` float maps -> uint8 bytes (row-major) and the shape.

    Maps within ``[0, 1]`` are shown as they are (a weak map stays faint); larger ones are
    scaled by their maximum.
    """
    maps = np.nan_to_num(np.asarray(maps, np.float32), nan=0.0)
    top = float(maps.max()) if maps.size else 0.0
    scale = 1.0 if top <= 1.0 else top
    return np.clip(maps / scale * 255.0, 0, 255).astype(np.uint8).tobytes(), list(maps.shape)


class ReviewData:
    """A checkpoint root opened for review: its store, layout, prompts and browser copies.

    ``db`` names the store (a SQLite file or a ``postgresql://`` URL; default ``$EVALKIT_DB``,
    else ``ROOT/evalkit.db``) when no open ``store`` is given.

    Raises:
        LayoutError: ``root`` is not a directory or holds no results store.
        StoreError: ``db`` cannot be opened (see :func:`evalkit.store.open_store`).
    """

    def __init__(self, root: str | Path, store: SQLStore | None = None, cache_dir: str | Path | None = None,
                 max_side: int = BROWSER_MAX_SIDE, db: str | Path | None = None) -> None:
        self.root = Path(root)
        if store is None:
            store = open_store(db, root=self.root, create=False)
        self.store = store
        self._view = open_root(self.root, store=self.store)
        self.cache_dir = Path(cache_dir) if cache_dir else self._default_cache()
        self.max_side = max_side

    def _default_cache(self) -> Path:
        preferred = self.root / CACHE_DIR_NAME / "browser"
        try:
            preferred.mkdir(parents=True, exist_ok=True)
            return preferred
        except OSError:  # a read-only root (e.g. a shared results folder)
            return Path(tempfile.gettempdir()) / "evalkit_cache" / "browser"

    # tables ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the root and its results (after `evalkit run` added some); labels are always
        read fresh."""
        self._view = open_root(self.root, store=self.store)

    @property
    def view(self) -> RootResults:
        """The root's results as of the last :meth:`refresh` (see :func:`evalkit.open_root`)."""
        return self._view

    @property
    def layout(self) -> Any:
        return self._view.layout

    @property
    def prompts(self) -> dict[str, str]:
        return {k: p.prompt for k, p in self._view.layout.prompts.items()}

    @property
    def checkpoints(self) -> list[str]:
        """Checkpoint names in curriculum order."""
        return self._view.order

    @property
    def checkpoint_meta(self) -> dict[str, dict[str, Any]]:
        return {c.name: {"step": c.step, "stage": c.stage} for c in self._view.layout.checkpoints}

    def results(self) -> pd.DataFrame:
        """Latest stored results of the videos under this root (no arrays), as of the last
        :meth:`refresh`."""
        return self._view.results

    def labels(self) -> pd.DataFrame:
        return self.store.labels_frame()

    def detectors(self) -> list[str]:
        """Detectors with results under this root, sorted."""
        return self._view.detectors

    def clips(self, checkpoint: str | None = None) -> list[Clip]:
        """Clips with stored results, in checkpoint order, then by prompt and seed."""
        items = self.store.items_frame()
        present = {i.path: i for i in self.layout.items}
        scored = set(self.results()["video_hash"])
        items = items[items["path"].isin(present) & items["video_hash"].isin(scored)]
        if checkpoint is not None:
            items = items[items["checkpoint"] == checkpoint]
        rank = {c: i for i, c in enumerate(self.checkpoints)}
        items = items.assign(_rank=items["checkpoint"].map(rank).fillna(len(rank)), _seed=items["seed"].fillna(-1))
        items = items.sort_values(["_rank", "prompt_id", "_seed", "path"])
        return [self._clip(row) for row in items.itertuples()]

    def clip(self, path: str | Path) -> Clip:
        """The clip stored for ``path``.

        Raises:
            LayoutError: the store knows no video at ``path``.
        """
        items = self.store.items_frame()
        match = items[items["path"] == str(path)]
        if match.empty:
            raise LayoutError(str(path), "expected a video scored under this root, got one the store does not know")
        return self._clip(next(match.itertuples()))

    def _clip(self, row: Any) -> Clip:
        def known(value: Any) -> Any:
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        seed = known(row.seed)
        return Clip(path=str(row.path), video_hash=str(row.video_hash), checkpoint=known(row.checkpoint),
                    prompt_id=known(row.prompt_id), seed=None if seed is None else int(seed),
                    prompt=self.prompts.get(str(row.prompt_id)), num_frames=known(row.num_frames) and int(row.num_frames),
                    fps=known(row.fps) and float(row.fps))

    # what the page gets ------------------------------------------------------------------
    def clip_payload(self, clip: Clip, overlay: str | None = None, identity: bool = True,
                     scores: bool = True) -> dict[str, Any]:
        """The JSON-able description of ``clip`` for the player, with its video bytes.

        Keys: title, subtitle, prompt, fps, num_frames, video (bytes), lanes (per detector:
        detector, series, threshold?, higher_is_worse, meaning, score, flagged), events,
        overlay ({shape, data} or None). ``identity=False`` leaves out everything naming the
        checkpoint or file (blinded comparisons); ``scores=False`` leaves out results.
        """
        from evalkit.widgets._scoring import detector_thresholds

        results = self.results()
        mine = results[results["video_hash"] == clip.video_hash]
        thresholds = detector_thresholds(results[results["detector"].isin(set(mine["detector"]))]) if scores else {}
        lanes, events, overlay_payload = [], [], None
        num_frames = clip.num_frames
        for name in sorted(mine["detector"].unique()) if scores else []:
            result = self.store.latest_result(clip.video_hash, name)
            if result is None:
                continue
            info = detector_info(name)
            series = np.asarray(result.series, np.float64)
            num_frames = num_frames or int(series.size)
            lanes.append({
                "detector": name, "series": _finite_or_none(series), "threshold": _json_float(thresholds.get(name)),
                "higher_is_worse": info["higher_is_worse"], "meaning": info["score_meaning"],
                "score": _json_float(result.score), "flagged": bool(result.flagged),
            })
            events += [{"detector": name, "kind": e.kind, "start": int(e.start), "end": int(e.end),
                        "score": _json_float(e.score)} for e in result.events]
            maps = result.maps
            if overlay_payload is None and maps is not None and maps.ndim == 3 and (overlay in (None, name)):
                data, shape = overlay_bytes(maps)
                overlay_payload = {"detector": name, "shape": shape, "data": data}
        copy = browser_copy(clip, self.cache_dir, self.max_side)
        fps, frames_in_copy = _stream_info(copy)
        if num_frames and num_frames != frames_in_copy:
            log.warning("%s: %d frames scored but %d in the browser copy; frames may not line up (the store "
                        "does not know the run's frame rate)", clip.path, num_frames, frames_in_copy)
        meta = self.checkpoint_meta.get(clip.checkpoint or "", {})
        stage = " · ".join(str(x) for x in (meta.get("stage"), meta.get("step") and f"step {meta['step']}") if x)
        seed = "" if clip.seed is None else f" · seed {clip.seed}"
        return {
            "title": (clip.checkpoint or Path(clip.path).parent.name) if identity else "",
            "subtitle": f"{stage}{' · ' if stage else ''}{clip.prompt_id}{seed}" if identity else "",
            "path": clip.path if identity else "",
            "prompt": clip.prompt or "",
            "fps": fps,
            "num_frames": min(frames_in_copy, num_frames or frames_in_copy),
            "video": copy.read_bytes(),
            "lanes": lanes,
            "events": sorted(events, key=lambda e: (e["start"], e["detector"])),
            "overlay": overlay_payload,
        }


def _json_float(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _stream_info(path: Path) -> tuple[float, int]:
    """``(fps, frame count)`` of an encoded browser copy (read from the container)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
    return fps, int(frames)
