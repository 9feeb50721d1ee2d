"""The runner: decode each video once, compute shared inputs once, run every detector.

For each chunk of videos it hashes the files, skips (video, detector, version, config) keys
already in the store, decodes what is left once, sends frames to the landmark worker pool when
any pending detector needs face or pose, runs frame-only detectors while the workers are busy,
then the landmark detectors. Each result is written to the store as soon as it exists. A bad
video or a detector failure becomes an error outcome naming the file; the run goes on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit._types import DetectorResult, FaceTrack, PoseTrack, Video, VideoInputs
from evalkit.detector import BaseDetector, Detector, detector_side
from evalkit.errors import EvalkitError, VideoDecodeError
from evalkit.landmarks import LandmarkOptions, LandmarkPool, backend_tag
from evalkit.layout import VideoItem
from evalkit.registry import available_detectors, canonical_name, detector_facts, get_detector
from evalkit.store import ItemRecord, ResultKey, ResultStore, prompt_digest
from evalkit.video import DecodeOptions, content_hash, decode_video

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """One (video, detector) answer of a run: a result, an error, or "already stored"."""

    item: VideoItem
    detector: str
    result: DetectorResult | None = None
    error: str | None = None
    cached: bool = False

    def to_record(self) -> dict[str, Any]:
        """The JSONL contract: ``{"video", "detector", "score", "flagged", "events", "stats"}``,
        or ``{"video", "detector", "error"}``."""
        record: dict[str, Any] = {"video": self.item.path, "detector": self.detector}
        if self.error is not None:
            record["error"] = self.error
        elif self.result is not None:
            record.update(self.result.to_record())
        return record


@dataclass
class _Job:
    item: VideoItem
    digest: str
    todo: list[Detector]
    video: Video | None = None
    landmarks: Future | None = None
    face: FaceTrack | None = None
    pose: PoseTrack | None = None
    landmark_error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    meta: tuple[int, float, int, int] | None = None  # (frames, fps, width, height) once decoded


def resolve_detectors(
    names: Sequence[str] | None = None, device: str = "cpu", config: dict[str, dict[str, Any]] | None = None
) -> list[Detector]:
    """Instantiate detectors by name (aliases allowed). ``None`` means every built-in and plug-in
    detector that can run here; detectors that cannot (missing weights) are left out with a log
    line. A name given explicitly fails at once if unknown or unavailable.

    Raises:
        UnknownDetectorError: a name is not registered (with suggestions).
        EvalkitError: an explicitly named detector cannot run here (says why).
    """
    config = config or {}
    _check_device(device)
    explicit = names is not None
    chosen = [canonical_name(n) for n in names] if explicit else available_detectors()
    for key in config:
        canonical_name(key)  # a typo in --set fails as loudly as one in --detectors
    detectors = []
    for name in dict.fromkeys(chosen):
        reason = detector_facts(name).unavailable_reason()
        if reason:
            if explicit:
                raise EvalkitError(f"detector {name!r} cannot run here: {reason}")
            log.info("skipping detector %s: %s", name, reason)
            continue
        detectors.append(get_detector(name, device=device, **config.get(name, {})))
    return detectors


def _check_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise EvalkitError(f"--device: expected cpu, cuda or cuda:N, got {device!r}") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise EvalkitError(f"--device {device}: no CUDA device is visible here (torch.cuda.is_available() is False); use --device cpu")


def _key(digest: str, detector: Detector, prompt: str | None, landmarks: str = "mediapipe") -> ResultKey:
    # A prompt-reading detector's result belongs to (video, prompt), not to the video alone.
    prompt_hash = prompt_digest(prompt) if "prompt" in detector.requires else ""
    config_hash = detector.config_hash
    # Landmark backends give different landmarks: a face/pose result names its backend, except
    # MediaPipe's, whose keys stay as they were before backends existed (stores stay valid).
    # The re-implemented pipeline carries its own version: a fix to it gives new keys.
    tag = backend_tag(landmarks)
    if tag and _needs_landmarks(detector):
        config_hash = f"{config_hash}+landmarks={tag}"
    return ResultKey(digest, detector.name, str(detector.version), config_hash, prompt_hash)


# Videos per chunk: on CPU a few (memory, and results reach the store early); the torch
# landmark backend on a GPU steps every video of a chunk through time in one batch, and a GPU
# batch wants tens of videos (about 40 MB of frames each at 512 px and 5 s).
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 4, 32


def default_batch_size(options: LandmarkOptions) -> int:
    """Videos decoded and scored together when the caller names no ``batch_size``."""
    gpu = options.backend == "torch" and str(options.device).startswith("cuda")
    return GPU_BATCH_SIZE if gpu else CPU_BATCH_SIZE


def landmark_options(landmarks: str | None, device: str) -> LandmarkOptions:
    """The landmark options of a run on ``device``: the backend named, or the default there."""
    from evalkit.landmarks import default_backend

    return LandmarkOptions(backend=landmarks or default_backend(device), device=device)


def _landmark_pool(workers: int | None, options: LandmarkOptions) -> Any:
    """Worker processes for MediaPipe and LiteRT; the torch backend batches the videos of a
    chunk in this process instead (evalkit._torch_landmarks.TorchLandmarkPool)."""
    if options.backend == "torch":
        from evalkit._torch_landmarks import TorchLandmarkPool
        from evalkit.landmarks import extract_torch

        return TorchLandmarkPool(options, lambda videos, face, pose, engine: extract_torch(
            videos, face, pose, options, engine=engine))
    return LandmarkPool(workers, options)


def _needs_landmarks(detector: Detector) -> bool:
    return bool({"face", "pose"} & set(detector.requires))


def _by_name(detectors: Sequence[Detector], name: str) -> Detector:
    return next(d for d in detectors if d.name == name)


ENGINES = ("local", "ray")


def make_engine(engine: str | Any, address: str | None = None) -> Any:
    """``"local"`` -> None (the Runner decodes and scores itself); ``"ray"`` -> a Ray engine;
    an engine instance passes through.

    Raises:
        EvalkitError: an unknown engine name, ``address`` without Ray, or Ray not installed.
    """
    if not isinstance(engine, str):
        return engine
    if engine == "local":
        if address is not None:
            raise EvalkitError(f"address {address!r}: only the 'ray' engine joins a cluster (engine is 'local')")
        return None
    if engine == "ray":
        try:
            from evalkit._ray_engine import RayEngine
        except ImportError as exc:
            if exc.name is not None and exc.name.split(".")[0] == "ray":
                raise EvalkitError("engine 'ray' needs Ray: pip install -e '.[ray]'") from exc
            raise
        return RayEngine(address=address)
    raise EvalkitError(f"engine: expected one of {', '.join(map(repr, ENGINES))}, got {engine!r}")


def _put_item(store: ResultStore | None, job: _Job) -> None:
    if store is not None and job.meta is not None:
        item = job.item
        store.put_item(ItemRecord(item.path, job.digest, item.checkpoint, item.prompt_id, item.seed,
                                  *job.meta, prompt_digest(item.prompt)))


def _with_sides(decode: DecodeOptions, detectors: Sequence[Detector]) -> DecodeOptions:
    """``decode`` with the sizes ``detectors`` declare beyond the run's own (decoded once, scaled per size)."""
    sides = (detector_side(d, decode.max_side) for d in detectors)
    return dataclasses.replace(decode, detector_sides=tuple(dict.fromkeys(s for s in sides if s != decode.max_side)))


def _chunks(items: Sequence[VideoItem], size: int) -> Iterator[Sequence[VideoItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Runner:
    """Evaluates videos with a set of detectors, optionally resuming from a store.

    Args:
        detectors: instances (see :func:`resolve_detectors`).
        decode: how every video is decoded, once, for all detectors.
        workers: landmark worker processes (``0``: in this process; ``None``: one per core, <= 4).
            The local engine's; the Ray engine sizes its pools from the cluster.
        batch_size: videos decoded and scored together (memory grows with it); None: 4, or 32
            with the torch landmark backend on CUDA (:func:`default_batch_size`).
        engine: ``"local"`` (this machine) or ``"ray"`` (a Ray cluster: decode and model worker
            pools, see :mod:`evalkit._ray_engine`), or an engine instance. Planning, resume and
            the store are the same for both: only the decode-and-score step moves.
        address: the Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None: ``$RAY_ADDRESS``
            or a new local cluster.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        decode: DecodeOptions = DecodeOptions(),
        workers: int | None = None,
        batch_size: int | None = None,
        landmark_options: LandmarkOptions = LandmarkOptions(),
        engine: str | Any = "local",
        address: str | None = None,
    ) -> None:
        if batch_size is None:
            batch_size = default_batch_size(landmark_options)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.detectors = list(detectors)
        # what any engine decodes: the run's size, plus the sizes detectors declared
        self.decode = _with_sides(decode, self.detectors)
        self.batch_size = batch_size
        self.landmark_options = landmark_options
        self.landmarks = landmark_options.backend  # part of face/pose result keys (see _key)
        self.engine = make_engine(engine, address)
        self.pool = _landmark_pool(0 if self.engine is not None else workers, landmark_options)
        # Videos planned together; an engine that streams keeps its pools busy across more.
        self.chunk_size = batch_size if self.engine is None else max(batch_size, 256)

    def worker_copy(self, device: str | None = None) -> Runner:
        """A local, in-process runner with the same detectors and options: what an engine's
        worker scores decoded videos with (:meth:`score_decoded`). With ``device`` (a GPU
        worker's ``"cuda"``) its detectors and torch landmarks run there; the landmark backend,
        and so every result key, stays the one this run chose."""
        detectors, options = self.detectors, self.landmark_options
        if device is not None:
            detectors = [type(d)(device=device, **d.config) if isinstance(d, BaseDetector) else d for d in detectors]
            options = dataclasses.replace(options, device=device)
        return Runner(detectors, self.decode, workers=0, batch_size=self.batch_size, landmark_options=options)

    def close(self) -> None:
        self.pool.close()
        if self.engine is not None:
            self.engine.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, items: Iterable[VideoItem], store: ResultStore | None = None, progress: bool = False) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per (item, detector), in input order. Results are stored as
        soon as they exist; outcomes are yielded a chunk (``batch_size`` videos) at a time. With
        ``progress``, a bar (terminal or notebook) counts clips as their last detector finishes."""
        from evalkit.progress import clip_progress

        items = list(items)
        with clip_progress(len(items), enabled=progress) as bar:
            rank = {d.name: i for i, d in enumerate(self.detectors)}
            for chunk in _chunks(items, self.chunk_size):
                # Input order, then detector order: output reads like the command line.
                position = {id(item): i for i, item in enumerate(chunk)}
                left = {id(item): len(self.detectors) for item in chunk}
                outcomes = []
                for outcome in self._run_chunk(chunk, store):
                    outcomes.append(outcome)
                    left[id(outcome.item)] -= 1
                    if left[id(outcome.item)] == 0:
                        bar.update(1)
                yield from sorted(outcomes, key=lambda o: (position[id(o.item)], rank.get(o.detector, 0)))

    def _run_chunk(self, chunk: Sequence[VideoItem], store: ResultStore | None) -> Iterator[Outcome]:
        jobs: list[_Job] = []
        produced: dict[ResultKey, Outcome] = {}  # key -> the outcome computed for it in this chunk
        followers: list[tuple[VideoItem, str, Detector, ResultKey]] = []  # same file (and prompt) again
        for item in chunk:
            try:
                digest = content_hash(item.path)
            except VideoDecodeError as exc:
                yield from self._fail_all(item, self.detectors, str(exc), store)
                continue
            todo = []
            for d in self.detectors:
                key = _key(digest, d, item.prompt, self.landmarks)
                if key in produced:
                    followers.append((item, digest, d, key))
                elif store is not None and store.has_result(key):
                    yield Outcome(item, d.name, cached=True)
                else:
                    produced[key] = Outcome(item, d.name, error="not computed")  # placeholder, filled below
                    todo.append(d)
            if store is not None and not todo:
                store.put_item(ItemRecord(item.path, digest, item.checkpoint, item.prompt_id, item.seed,
                                          prompt_hash=prompt_digest(item.prompt)))
            if todo:
                jobs.append(_Job(item, digest, todo))

        for job, detector, outcome in self._execute(jobs, store):
            produced[_key(job.digest, detector, job.item.prompt, self.landmarks)] = outcome
            yield outcome

        meta = {job.digest: job.meta for job in jobs if job.meta is not None}
        for item, digest, detector, key in followers:
            origin = produced[key]
            if store is not None:
                store.put_item(ItemRecord(item.path, digest, item.checkpoint, item.prompt_id, item.seed,
                                          *meta.get(digest, (None, None, None, None)), prompt_digest(item.prompt)))
                if origin.error is not None:
                    store.put_error(item.path, detector.name, origin.error, item.checkpoint)
            yield Outcome(item, detector.name, result=origin.result, error=origin.error, cached=origin.error is None)

    def _execute(self, jobs: list[_Job], store: ResultStore | None) -> Iterator[tuple[_Job, Detector, Outcome]]:
        """Decode each job's video once and score it with its pending detectors; one outcome per
        (job, pending detector). Only this step differs between engines."""
        if self.engine is not None:
            yield from self._execute_on_engine(jobs, store)
            return
        decoded: list[_Job] = []
        for job in jobs:
            try:
                job.video = decode_video(job.item.path, self.decode_options(job), job.digest)
            except VideoDecodeError as exc:
                for outcome in self._fail_all(job.item, job.todo, str(exc), store):
                    yield job, _by_name(job.todo, outcome.detector), outcome
                continue
            video = job.video
            job.meta = (video.num_frames, video.fps, video.size[0], video.size[1])
            _put_item(store, job)
            self._submit_landmarks(job)  # the workers start while the next video decodes
            decoded.append(job)
        yield from self.score_decoded(decoded, store)

    def _execute_on_engine(self, jobs: list[_Job], store: ResultStore | None) -> Iterator[tuple[_Job, Detector, Outcome]]:
        # The engine's workers decode and score; results come back here, the run's one writer.
        for job, name, result, error in self.engine.execute(self, jobs, on_decoded=lambda job: _put_item(store, job)):
            detector = _by_name(job.todo, name)
            if error is not None:
                yield job, detector, self._error(job.item, name, error, store, quiet=True)  # logged where it happened
                continue
            if store is not None:
                store.put_result(_key(job.digest, detector, job.item.prompt, self.landmarks), result)
            yield job, detector, Outcome(job.item, name, result)

    def decode_options(self, job: _Job) -> DecodeOptions:
        """How ``job``'s video is decoded: the run's size plus the sizes its pending detectors declare."""
        return _with_sides(self.decode, job.todo)

    def decoded_job(self, item: VideoItem, digest: str, todo: Sequence[str], video: Video) -> _Job:
        """A job for :meth:`score_decoded` from what an engine's worker has: the item, its
        content hash, the names of its pending detectors and its decoded video."""
        return _Job(item, digest, [_by_name(self.detectors, name) for name in todo], video=video)

    def _submit_landmarks(self, job: _Job) -> None:
        need_face = any("face" in d.requires for d in job.todo)
        need_pose = any("pose" in d.requires for d in job.todo)
        if job.landmarks is None and (need_face or need_pose):
            job.landmarks = self.pool.submit(job.video.numpy_hwc(), need_face, need_pose)  # type: ignore[union-attr]

    def score_decoded(self, jobs: list[_Job], store: ResultStore | None = None) -> Iterator[tuple[_Job, Detector, Outcome]]:
        """Landmarks where a pending detector needs them, then every pending detector, batched
        over ``jobs`` (decoded). Frame-only detectors run while the landmark workers are busy."""
        for job in jobs:
            self._submit_landmarks(job)
        for detector in self.detectors:
            if not _needs_landmarks(detector):
                for job, outcome in self._score(detector, [j for j in jobs if detector in j.todo], store):
                    yield job, detector, outcome
        for job in jobs:
            if job.landmarks is None:
                continue
            try:
                job.face, job.pose = job.landmarks.result()
            except Exception as exc:  # a crashed worker must not end the run
                job.landmark_error = f"{job.item.path}: landmark extraction failed ({type(exc).__name__}: {exc})"
                log.error(job.landmark_error)
        for detector in self.detectors:
            if _needs_landmarks(detector):
                group = [j for j in jobs if detector in j.todo]
                for job in group:
                    if job.landmark_error:
                        yield job, detector, self._error(job.item, detector.name, job.landmark_error, store)
                for job, outcome in self._score(detector, [j for j in group if not j.landmark_error], store):
                    yield job, detector, outcome

    def _score(self, detector: Detector, jobs: list[_Job], store: ResultStore | None) -> Iterator[tuple[_Job, Outcome]]:
        if not jobs:
            return
        side = detector_side(detector, self.decode.max_side)
        inputs = [VideoInputs(j.video.at(side), j.face, j.pose, j.item.prompt) for j in jobs]  # type: ignore[union-attr]
        try:
            results: list[DetectorResult | Exception] = list(detector.score_batch(inputs))
        except Exception:
            if len(jobs) == 1:
                results = [self._safe_one(detector, inputs[0])]
            else:  # isolate the video that broke the batch
                results = [self._safe_one(detector, x) for x in inputs]
        for job, result in zip(jobs, results):
            if isinstance(result, Exception):
                message = f"{job.item.path}: detector {detector.name} failed ({type(result).__name__}: {result})"
                yield job, self._error(job.item, detector.name, message, store)
                continue
            result = result.remap_frames(job.video.frame_indices)  # type: ignore[union-attr]
            if store is not None:
                store.put_result(_key(job.digest, detector, job.item.prompt, self.landmarks), result)
            yield job, Outcome(job.item, detector.name, result)

    @staticmethod
    def _safe_one(detector: Detector, inputs: VideoInputs) -> DetectorResult | Exception:
        try:
            return detector.score_batch([inputs])[0]
        except Exception as exc:
            log.exception("%s: detector %s failed", inputs.video.path, detector.name)
            return exc

    def _fail_all(self, item: VideoItem, detectors: Sequence[Detector], message: str, store: ResultStore | None) -> Iterator[Outcome]:
        log.error(message)
        for detector in detectors:
            yield self._error(item, detector.name, message, store, quiet=True)

    @staticmethod
    def _error(item: VideoItem, detector: str, message: str, store: ResultStore | None, quiet: bool = False) -> Outcome:
        if not quiet:
            log.error(message)
        if store is not None:
            store.put_error(item.path, detector, message, item.checkpoint)
        return Outcome(item, detector, error=message)


def outcomes_frame(outcomes: Iterable[Outcome]) -> pd.DataFrame:
    """Outcomes as a DataFrame: video, detector, score, flagged, events, stats, series, error."""
    rows = []
    for o in outcomes:
        r = o.result
        rows.append({
            "video": o.item.path,
            "checkpoint": o.item.checkpoint,
            "prompt_id": o.item.prompt_id,
            "detector": o.detector,
            "score": None if r is None else r.score,
            "flagged": None if r is None else bool(r.flagged),
            "events": None if r is None else [e.to_dict() for e in r.events],
            "stats": None if r is None else r.stats,
            "series": None if r is None else r.series,
            "error": o.error,
        })
    columns = ["video", "checkpoint", "prompt_id", "detector", "score", "flagged", "events", "stats", "series", "error"]
    return pd.DataFrame(rows, columns=columns)


def score(
    paths: str | Path | Sequence[str | Path],
    detectors: Sequence[str] | str | None = None,
    prompts: str | dict[str, str] | None = None,
    device: str = "cpu",
    workers: int | None = 0,
    decode: DecodeOptions = DecodeOptions(),
    config: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    landmarks: str | None = None,
    engine: str = "local",
    address: str | None = None,
) -> pd.DataFrame:
    """Score video files; one row per (video, detector).

    Args:
        paths: video file(s).
        detectors: names (``"confetti"`` or ``["blink", "motion"]``); None: all available.
        prompts: one prompt for every video, or ``{prompt_id (file stem): prompt}``.
        device: ``"cpu"`` or ``"cuda"`` for the batched tensor work.
        workers: landmark worker processes (0: in this process, the quickest for a few clips).
        config: per-detector options, ``{"confetti": {"threshold": 0.4}}``.
        landmarks: face/pose landmark backend, ``"mediapipe"``, ``"litert"`` or ``"torch"``;
            None: ``torch`` on CUDA, ``mediapipe`` on CPU (:func:`evalkit.landmarks.default_backend`).
        progress: a bar of clips done / total, clips/s and ETA (a widget in a notebook).
        engine: ``"local"`` or ``"ray"`` (worker pools on the Ray cluster at ``address``, or
            ``$RAY_ADDRESS``, or a new local one); the same rows either way.

    Returns:
        DataFrame with columns video, checkpoint, prompt_id, detector, score, flagged, events,
        stats, series (``(T,)`` numpy), error. Unreadable videos give rows with ``error`` set.
    """
    from evalkit.layout import parse_video_name

    if isinstance(paths, (str, Path)):
        paths = [paths]
    if isinstance(detectors, str):
        detectors = [detectors]
    instances = resolve_detectors(detectors, device=device, config=config)
    items = []
    for p in paths:
        prompt_id, seed = parse_video_name(p)
        text = prompts if isinstance(prompts, str) else (prompts or {}).get(prompt_id)
        items.append(VideoItem(str(p), None, prompt_id, seed, text))
    options = landmark_options(landmarks, device)
    with Runner(instances, decode=decode, workers=workers, landmark_options=options,
                engine=engine, address=address) as runner:
        return outcomes_frame(runner.run(items, progress=progress))
