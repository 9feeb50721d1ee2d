"""Study (version 6; the detector's ``cut`` check grew from it): does MediaPipe's person mask show a detached forearm?

    python -m evalkit.datasets.motion_mask_study [--seeds 0 60]

For puppet clips (:func:`evalkit.datasets.motion_eval.puppet_clips`: stretch, detach and clean)
it runs MediaPipe pose with ``enable_segmentation=True`` (bundled model, offline) and measures per
frame and arm, from the pose's own elbow E and wrist W (forearm length L):

- ``gap``: the share of points on the forearm (0.15-0.85 of the way from E to W, +-0.08 L across)
  where the mask is below 0.5: background showing through the forearm;
- ``overrun``: how far past W, along the forearm, the mask goes on (in L).

Per clip it prints, for the broken arm, the largest gap held over 2 frames inside and outside the
broken range, and the median overrun inside and outside; for other arms the same over the clip.
Motivation and results: docs/motion.md ("The person-mask study"). Version 7 of the detector turned
this into its ``cut`` check, on the profile :func:`evalkit.landmarks.limb_mask_profile` samples in
the pose workers.
"""

from __future__ import annotations

import argparse

import numpy as np

from evalkit.datasets.motion_eval import puppet_clips
from evalkit.landmarks import pose_graph

ARMS = {"left": (13, 15), "right": (14, 16)}


def pose_and_masks(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe pose ``(T, 33, 4)`` (NaN where no person) and person masks ``(T, H, W)`` float16,
    from the pipeline's own pose settings (:func:`evalkit.landmarks.pose_graph`)."""
    lms, masks = [], []
    with pose_graph(segmentation=True) as pose:
        for frame in frames:  # MediaPipe's graph takes one frame at a time
            r = pose.process(np.ascontiguousarray(frame))
            if r.pose_landmarks is None:
                lms.append(np.full((33, 4), np.nan))
                masks.append(np.zeros(frame.shape[:2], np.float16))
                continue
            lms.append(np.array([[p.x, p.y, p.z, p.visibility] for p in r.pose_landmarks.landmark]))
            masks.append(r.segmentation_mask.astype(np.float16))
    return np.stack(lms), np.stack(masks)


def forearm_mask_series(landmarks: np.ndarray, masks: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """``(gap (T,), overrun (T,))`` for one arm, NaN where the elbow or wrist is unsure (< 0.6)."""
    t_len, h, w = masks.shape
    e, wr = ARMS[side]
    elbow, wrist = landmarks[:, e, :2] * [w, h], landmarks[:, wr, :2] * [w, h]  # (T, 2) px
    length = np.linalg.norm(wrist - elbow, axis=-1)
    ok = (np.minimum(landmarks[:, e, 3], landmarks[:, wr, 3]) >= 0.6) & (length >= 5.0)  # NaN compares False
    d = (wrist - elbow) / np.where(ok, length, 1.0)[:, None]
    n = np.stack([-d[:, 1], d[:, 0]], -1)
    frames = np.arange(t_len)[:, None, None]

    def mask_at(origin: np.ndarray, along: np.ndarray, across: tuple[float, ...]) -> np.ndarray:
        """``(T, S)``: the mask's largest value over the ``across`` offsets at ``origin + along * L * d``."""
        pts = (origin[:, None, None] + (along[None, :, None] * length[:, None, None])[..., None] * d[:, None, None]
               + (np.array(across)[None, None, :] * length[:, None, None])[..., None] * n[:, None, None])  # (T, S, K, 2)
        x = np.clip(np.round(np.nan_to_num(pts[..., 0])).astype(int), 0, w - 1)
        y = np.clip(np.round(np.nan_to_num(pts[..., 1])).astype(int), 0, h - 1)
        return masks[frames, y, x].astype(float).max(-1)

    past = np.arange(0.0, 2.0, 0.05)
    gap = (mask_at(elbow, np.arange(0.15, 0.86, 0.05), (-0.08, 0.0, 0.08)) < 0.5).mean(-1)
    beyond = mask_at(wrist, past, (-0.1, 0.0, 0.1)) < 0.5
    overrun = np.where(beyond.any(-1), past[beyond.argmax(-1)], past[-1] + 0.05)
    return np.where(ok, gap, np.nan), np.where(ok, overrun, np.nan)


def _held(x: np.ndarray, k: int = 2) -> float:
    x = np.nan_to_num(x, nan=0.0)
    return max((float(x[i : i + k].min()) for i in range(len(x) - k + 1)), default=0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 60), help="seed range [from, to)")
    args = parser.parse_args(argv)
    gaps: dict[str, list[float]] = {"detach (broken arm, in range)": [], "everything else": []}
    for name, frames, _, truth in puppet_clips(range(*args.seeds)):
        kind = truth["breaks"][0]["kind"] if truth["breaks"] else None
        if kind not in (None, "stretch", "detach"):
            continue
        landmarks, masks = pose_and_masks(frames)
        brk = truth["breaks"][0] if truth["breaks"] else None
        parts = []
        for side in ARMS:
            gap, overrun = forearm_mask_series(landmarks, masks, side)
            if brk and brk["part"].startswith(side):
                inside = np.zeros(len(gap), bool)
                inside[brk["start"] : brk["end"] + 1] = True
                g_in, g_out = _held(np.where(inside, gap, 0.0)), _held(np.where(~inside, gap, 0.0))
                parts.append(f"{side}* gap in {g_in:.2f} out {g_out:.2f}, overrun in "
                             f"{np.nanmedian(np.where(inside, overrun, np.nan)):.2f} out {np.nanmedian(np.where(~inside, overrun, np.nan)):.2f}")
                (gaps["detach (broken arm, in range)"] if kind == "detach" else gaps["everything else"]).append(g_in)
                gaps["everything else"].append(g_out)
            else:
                parts.append(f"{side} gap {_held(gap):.2f}, overrun {np.nanmedian(overrun):.2f}")
                gaps["everything else"].append(_held(gap))
        print(f"{name} {brk['part'] if brk else ''}: " + " | ".join(parts), flush=True)
    for name, values in gaps.items():
        v = np.array(values)
        print(f"{name}: {int((v > 0.2).sum())} of {v.size} arms with a gap > 0.2 held over 2 frames")


if __name__ == "__main__":
    main()
