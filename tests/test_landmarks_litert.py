"""The ``litert`` landmark backend: MediaPipe's graph steps re-implemented around the bare models.

Unit tests check each step against a slow, obvious reference or a geometric fact; the real-clip
tests hold the backend to MediaPipe's own output and to the detectors' verdicts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit import _landmark_pipeline as lp
from evalkit._types import FaceTrack
from evalkit.landmarks import LandmarkOptions, extract_face, extract_pose

# ----------------------------------------------------------------------------------------------
# Steps of the graphs


def test_anchor_counts_match_the_model_outputs():
    from evalkit._litert import LiteRTModel

    for name, size, strides in (("face_detection_short_range", 128, (8, 16, 16, 16)),
                                ("pose_detection", 224, (8, 16, 32, 32, 32))):
        anchors = lp.ssd_anchor_centres(size, strides)
        model = LiteRTModel(name)
        boxes, scores = model(np.zeros((1, size, size, 3), np.float32))
        assert anchors.shape == (boxes.shape[1], 2) == (scores.shape[1], 2)
        assert anchors.min() > 0 and anchors.max() < 1


def _slow_weighted_nms(boxes, kps, scores, threshold):
    """One detection at a time, in plain Python."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    remaining = sorted(range(len(scores)), key=lambda i: -scores[i])
    out = []
    while remaining:
        top = remaining[0]
        group = [i for i in remaining if iou(boxes[top], boxes[i]) > threshold]
        remaining = [i for i in remaining if i not in group]
        total = sum(scores[i] for i in group)
        box = [sum(boxes[i][k] * scores[i] for i in group) / total for k in range(4)]
        kp = [[sum(kps[i][j][c] * scores[i] for i in group) / total for c in range(2)] for j in range(len(kps[0]))]
        out.append((box, kp, scores[top]))
    return out


def test_weighted_nms_matches_a_slow_reference():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.2, 0.8, (4, 2))
    pick = rng.integers(0, 4, 40)
    xy = centres[pick] + rng.normal(0, 0.02, (40, 2))
    wh = rng.uniform(0.1, 0.2, (40, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    kps = xy[:, None, :] + rng.normal(0, 0.01, (40, 3, 2))
    scores = rng.uniform(0.5, 1.0, 40)
    got = lp.weighted_nms(lp.Detections(boxes, kps, scores), 0.3)
    want = _slow_weighted_nms(boxes.tolist(), kps.tolist(), scores.tolist(), 0.3)
    assert 1 < len(want) < 40
    assert len(got.scores) == len(want)
    for k, (box, kp, score) in enumerate(want):
        np.testing.assert_allclose(got.boxes[k], box, atol=1e-9)
        np.testing.assert_allclose(got.keypoints[k], kp, atol=1e-9)
        assert got.scores[k] == score


@pytest.mark.parametrize("rotation_deg", [0.0, 30.0, -75.0, 180.0])
@pytest.mark.parametrize("flip", [False, True])
def test_crop_and_projection_are_inverse(rotation_deg, flip):
    """A bright dot cropped into the tensor and projected back lands where it was."""
    h, w = 240, 320
    dot = np.array([190.0, 95.0])
    frame = np.zeros((h, w, 3), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    frame[..., 1] = (255 * np.exp(-((xx - dot[0]) ** 2 + (yy - dot[1]) ** 2) / 8.0)).astype(np.uint8)
    roi = lp.Roi(170.0, 110.0, 90.0, 90.0, math.radians(rotation_deg))
    size = 64
    tensor = lp.crop(frame, roi, size, (0.0, 1.0), border_zero=True, flip=flip)[..., 1]
    assert tensor.shape == (size, size)
    weights = np.clip(tensor - 0.2, 0, None)
    ty, tx = np.mgrid[:size, :size]
    uv = np.array([(tx * weights).sum() / weights.sum(), (ty * weights).sum() / weights.sum()]) / size
    if flip:
        uv[0] = 1.0 - uv[0]
    back = roi.to_frame(uv)
    assert np.linalg.norm(back - dot) < 0.03 * roi.w, (back, dot)
    np.testing.assert_allclose(roi.from_frame(back), uv, atol=1e-9)


def test_rotation_turns_the_keypoint_vector_to_the_target():
    for angle in (0.0, 20.0, -110.0):
        a = math.radians(angle)
        p0, p1 = np.array([10.0, 10.0]), np.array([10.0 + math.cos(a), 10.0 + math.sin(a)])
        # y points down, so a vector turned clockwise on screen by ``angle`` gives that rotation
        assert math.isclose(lp.rotation_from(p0, p1, 0.0), a, abs_tol=1e-9)
        # pose: the hip -> scale-point vector pointing up is no rotation
    assert math.isclose(lp.rotation_from(np.array([0.0, 0.0]), np.array([0.0, -1.0]), 90.0), 0.0, abs_tol=1e-9)


def test_face_roi_is_the_square_landmark_box_scaled():
    pts = np.array([[100.0, 50.0], [160.0, 50.0], [130.0, 140.0]])
    roi = lp.roi_from_points(pts, 0, 1, 0.0, 1.5)
    assert (roi.cx, roi.cy) == (130.0, 95.0)
    assert roi.w == roi.h == 90.0 * 1.5
    assert roi.rotation == 0.0


def test_heatmap_refinement_moves_to_the_peak():
    hm = np.full((64, 64, 2), -10.0, np.float32)
    hm[20, 30, 0] = 10.0  # a confident peak near landmark 0
    hm[40, 10, 1] = -1.0  # landmark 1: nothing confident, left alone
    uv = np.array([[32.5 / 64, 22.5 / 64], [10.2 / 64, 40.3 / 64]])
    out = lp.refine_from_heatmap(uv, hm, kernel=7)
    np.testing.assert_allclose(out[0], [30 / 64, 20 / 64], atol=1e-3)
    np.testing.assert_allclose(out[1], uv[1])


def _slow_refine(uv, heatmap, kernel=7, min_confidence=0.5):
    """RefineLandmarksFromHeatmapCalculator's loops, one landmark and one cell at a time."""
    hm_h, hm_w, _ = heatmap.shape
    out = uv.astype(np.float64).copy()
    off = (kernel - 1) // 2
    for i in range(len(uv)):
        c, r = int(uv[i, 0] * hm_w), int(uv[i, 1] * hm_h)
        if not (0 <= c < hm_w and 0 <= r < hm_h):
            continue
        total = wc = wr = peak = 0.0
        for row in range(max(0, r - off), min(hm_h, r + off + 1)):
            for col in range(max(0, c - off), min(hm_w, c + off + 1)):
                conf = 1.0 / (1.0 + math.exp(-float(heatmap[row, col, i])))
                total, wc, wr, peak = total + conf, wc + col * conf, wr + row * conf, max(peak, conf)
        if peak >= min_confidence and total > 0:
            out[i] = wc / hm_w / total, wr / hm_h / total
    return out


def test_heatmap_refinement_matches_a_slow_reference():
    rng = np.random.default_rng(1)
    hm = rng.normal(-2.0, 3.0, (64, 64, 39)).astype(np.float32)
    uv = rng.uniform(-0.1, 1.1, (39, 2))  # some off the map, some at its edges
    for kernel in (7, 9):
        np.testing.assert_allclose(lp.refine_from_heatmap(uv, hm, kernel), _slow_refine(uv, hm, kernel), atol=1e-12)
    np.testing.assert_allclose(lp.refine_from_heatmap(uv, hm), _slow_refine(uv, hm, 9), atol=1e-12)


def test_one_euro_filter_holds_still_and_follows_fast_moves():
    f = lp.OneEuroFilter(min_cutoff=0.01, beta=10.0)
    still = [f(i / 30, np.array([5.0]), 1.0)[0] for i in range(10)]
    assert still == [5.0] * 10
    slow = f(10 / 30, np.array([5.1]), 1.0)[0]
    assert 5.0 < slow < 5.1  # a small move is smoothed
    f.reset()
    f(0.0, np.array([0.0]), 1.0)
    jump = f(1 / 30, np.array([100.0]), 1.0)[0]
    assert jump > 90.0  # a fast move passes almost whole (beta)


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="Did you mean 'litert'"):
        LandmarkOptions(backend="litrt")


class _RecordingEngine:
    """A stand-in engine (like a future torch one): checks the interface, delegates to LiteRT."""

    def __init__(self):
        from evalkit._litert import LiteRTEngine

        self.inner = LiteRTEngine()
        self.batches: list[tuple[str, tuple, np.dtype]] = []

    def __call__(self, name):
        model = self.inner(name)

        def call(batch):
            self.batches.append((name, batch.shape, batch.dtype))
            out = model(batch)
            assert all(o.shape[0] == batch.shape[0] for o in out)
            return out

        return call


def test_the_model_call_is_pluggable():
    from evalkit.datasets.footage import load_clip
    from evalkit.landmarks import _extract_face_pipeline, _extract_pose_pipeline

    frames = load_clip("single_face.mp4", max_side=256, max_frames=6)[0]
    options = LandmarkOptions(backend="litert")
    engine = _RecordingEngine()
    face = _extract_face_pipeline(frames, options, engine)
    pose = _extract_pose_pipeline(frames, options, engine)
    np.testing.assert_array_equal(face.landmarks, extract_face(frames, options).landmarks)
    np.testing.assert_array_equal(pose.landmarks, extract_pose(frames, options).landmarks)
    seen = {name for name, _, _ in engine.batches}
    assert seen == set(lp.MODEL_FILES)
    for name, shape, dtype in engine.batches:
        assert dtype == np.float32 and len(shape) == 4 and shape[3] == 3, (name, shape)
    # A tracked person costs one landmark call per frame: the detector ran once.
    assert sum(name == "pose_detection" for name, _, _ in engine.batches) == 1
    assert sum(name == "pose_landmark_full" for name, _, _ in engine.batches) == len(frames)


def test_result_keys_name_the_backend_only_when_not_mediapipe():
    from evalkit.detectors.blink import BlinkDetector
    from evalkit.detectors.confetti import ConfettiDetector
    from evalkit.detectors.motion import MotionDetector
    from evalkit.runner import _key
    from evalkit.store import ResultKey

    for detector in (BlinkDetector(), MotionDetector()):
        old = ResultKey("d" * 16, detector.name, str(detector.version), detector.config_hash, "")
        assert _key("d" * 16, detector, None) == old  # existing stores stay valid
        assert _key("d" * 16, detector, None, "mediapipe") == old
        new = _key("d" * 16, detector, None, "litert")
        assert new != old and new.config_hash.startswith(detector.config_hash) and "litert" in new.config_hash
    confetti = ConfettiDetector()
    assert _key("d" * 16, confetti, None, "litert") == _key("d" * 16, confetti, None)


# ----------------------------------------------------------------------------------------------
# Real footage against MediaPipe's own graphs


@pytest.fixture(scope="module")
def carphone():
    from evalkit.datasets.footage import load_clip

    return load_clip("carphone_pristine.mp4")


@pytest.mark.slow
def test_face_agrees_with_mediapipe(carphone):
    from evalkit.datasets.landmark_eval import face_agreement

    frames, _ = carphone
    a = face_agreement(extract_face(frames), extract_face(frames, LandmarkOptions(backend="litert")))
    assert a.found_mismatch <= 0.02, a
    assert a.median <= 0.02, a
    # The worst landmarks are the lids, which come from the iris model (the attention model's
    # own eye refinement draws them slightly differently): measured 2.7 % here.
    assert a.worst <= 0.035, a


@pytest.mark.slow
def test_pipeline_reproduces_mediapipes_graph_with_the_same_model(carphone):
    """Against MediaPipe's own graph running the classic mesh (refine_landmarks=False), the
    pipeline with the mesh's own lids is the same tracker: every landmark within 0.1 % of the
    face size, the same frames found (measured 0.02 %)."""
    from evalkit._landmark_pipeline import FaceMeshTracker, FaceSettings
    from evalkit.datasets.landmark_eval import face_agreement, mediapipe_classic_mesh, mesh_only
    from evalkit.landmarks import _engine, _track_faces

    frames, _ = carphone
    t, h, w, _ = frames.shape
    tracker = FaceMeshTracker(_engine("litert"), FaceSettings(eye_contour_points=0))
    ours = _track_faces((tracker(f) for f in frames), t, (w, h), LandmarkOptions())
    a = face_agreement(mesh_only(mediapipe_classic_mesh(frames)), mesh_only(ours))
    assert a.found_mismatch == 0.0 and a.found_reference == t, a
    assert a.worst <= 0.001, a


@pytest.mark.slow
def test_pose_agrees_with_mediapipe(carphone):
    from evalkit.datasets.landmark_eval import pose_agreement

    frames, _ = carphone
    a = pose_agreement(extract_pose(frames), extract_pose(frames, LandmarkOptions(backend="litert")))
    assert a.found_mismatch <= 0.02, a
    assert a.median <= 0.02 and a.worst <= 0.03, a


@pytest.mark.slow
def test_pose_steps_reproduce_mediapipes_graph(carphone):
    """Step by step against the streams inside MediaPipe's pose graph: the ROI each frame's
    landmark model ran on, the auxiliary points before and after the one-euro filter, and the
    landmarks. With a 7-wide heatmap window (the source graph's option, not what the wheel runs)
    the auxiliary points missed by 0.5 px from frame 0 and the landmarks by a median 1.7 px from
    frame 1; with 9 the whole clip stays within a few hundredths of a pixel (measured: aux
    smoothed 0.01 px, the ROI centre within 0.01 px, landmarks a median 0.06 px)."""
    from evalkit.datasets.landmark_eval import internal_gaps, mediapipe_pose_internals, pipeline_pose_internals
    from evalkit.landmarks import _engine

    frames = carphone[0][:30]
    gaps = internal_gaps(mediapipe_pose_internals(frames), pipeline_pose_internals(frames, _engine("litert")),
                         (frames.shape[2], frames.shape[1]))
    assert np.isfinite(gaps["landmarks"]).all() and np.isfinite(gaps["rect"][1:]).all()
    assert np.nanmax(gaps["rect"]) < 0.1, gaps["rect"]
    assert np.nanmedian(gaps["aux_smoothed"]) < 0.05, gaps["aux_smoothed"]
    assert np.nanmedian(gaps["landmarks"]) < 0.15, gaps["landmarks"]


@pytest.mark.slow
def test_blinks_found_with_the_classic_mesh(carphone):
    """carphone's two hand-labelled blinks and single_face's one, as with MediaPipe's mesh."""
    from evalkit.datasets.face_eval import blink_matches, inputs_for
    from evalkit.datasets.faces import CARPHONE_BLINKS
    from evalkit.datasets.footage import load_clip
    from evalkit.detectors.blink import BlinkDetector

    options = LandmarkOptions(backend="litert")
    for (frames, fps), truth in ((carphone, list(CARPHONE_BLINKS)),
                                 (load_clip("single_face.mp4", max_side=360), [(25, 29)])):
        track = extract_face(frames, options)
        assert isinstance(track, FaceTrack) and track.landmarks.shape[2:] == (478, 3)
        result = BlinkDetector().score(inputs_for(frames, fps, track, "clip"))
        caught, missed, false = blink_matches(result.events, truth)
        assert (caught, missed, false) == (len(truth), 0, 0), result.events


@pytest.mark.slow
def test_motion_verdicts_match_mediapipe_on_real_clips():
    """The cyclist and the cartoon rabbit (tests/test_motion.py's real negatives): not flagged
    with either backend."""
    from evalkit._types import Video, VideoInputs
    from evalkit.datasets.footage import load_clip
    from evalkit.datasets.motion_eval import retime
    from evalkit.detectors.motion import MotionDetector

    bikes, fps = load_clip("bikes.mp4", max_side=360)
    cyclist, cyc_fps = retime(bikes[75:175], fps, 12.0)
    bunny = load_clip("bigbuckbunny.mp4", max_side=360, max_frames=75)[0]
    import torch

    for frames, rate in ((cyclist, cyc_fps), (bunny, 25.0)):
        t, h, w = frames.shape[:3]
        video = Video(path="clip.mp4", frames=torch.zeros((t, 3, 2, 2), dtype=torch.uint8), fps=rate,
                      frame_indices=np.arange(t), source_size=(w, h), source_fps=rate, content_hash="x")
        verdicts = []
        for backend in ("mediapipe", "litert"):
            pose = extract_pose(frames, LandmarkOptions(backend=backend))
            assert pose.present.mean() > 0.5
            verdicts.append(MotionDetector().score(VideoInputs(video=video, pose=pose)).flagged)
        assert verdicts == [False, False]


@pytest.mark.slow
def test_score_with_litert_end_to_end(tmp_path):
    import evalkit
    from evalkit.datasets.footage import footage_path

    frame = evalkit.score(footage_path("single_face.mp4"), detectors=["blink", "motion"], landmarks="litert")
    assert set(frame["detector"]) == {"blink", "motion"}
    assert frame["error"].isna().all(), frame["error"].tolist()


@pytest.mark.slow
def test_worker_pool_splits_face_and_pose_and_gives_the_same_tracks(carphone):
    """With two workers, a video's face and pose run as two jobs (one per worker) and come back
    as one ``(face, pose)``, the same as in-process; a failing job fails the joined future."""
    from evalkit.landmarks import LandmarkPool, extract

    frames = np.ascontiguousarray(carphone[0][:20])
    options = LandmarkOptions(backend="litert")
    face, pose = extract(frames, True, True, options)
    with LandmarkPool(2, options) as pool:
        got_face, got_pose = pool.submit(frames, True, True).result(timeout=300)
        np.testing.assert_array_equal(got_face.landmarks, face.landmarks)
        np.testing.assert_array_equal(got_pose.landmarks, pose.landmarks)
        assert pool.submit(frames, False, True).result(timeout=300)[0] is None
        with pytest.raises(Exception):
            pool.submit(frames[..., :2], True, True).result(timeout=300)  # two channels: both jobs fail
