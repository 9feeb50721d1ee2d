"""The Ray engine: the runner's decode-and-score step spread over pools of Ray actors.

    driver: plan (hash files, skip stored keys)       decode pool: CPU actors
        -- videos -->  decode.remote(path)  -- frames stay in Ray's object store --+
                                                                                    v
    driver: the one store writer  <-- results --  model pool: GPU actors (a fraction of a GPU
                                                  each) when the cluster has GPUs, else CPU actors

Planning, resume, "the same file again" and every store write stay in
:class:`evalkit.runner.Runner` on the driver; only :meth:`Runner._execute` runs here. So a row
is written once, by one process, under the same key as the local engine's.

Workers pull: a decode actor is handed a video only when it holds fewer than ``depth`` and the
decoded-but-unscored buffer is below its bound (backpressure: decoders never run ahead of the
model pool by more than a few batches, so the object store does not fill); a model actor is
handed a batch of decoded videos when it is idle. A dead actor's work is handed out again (Ray
restarts the actor); a video whose workers die ``max_retries`` times ends as an error row.

Sizing: every actor reserves a fraction of a CPU, and all of them together leave
``headroom_cpus`` (one) of the cluster unclaimed, so a default one-CPU task (Ray Data's reads,
a user's own) can always be placed. Actors that each reserve a whole CPU on a small machine take
every slot and such tasks wait forever; fractions with headroom cannot starve them.

This module never imports :mod:`evalkit.runner` (the runner imports it): workers receive a
runner of their own, :meth:`Runner.worker_copy`, and use its :meth:`Runner.score_decoded`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

from evalkit.errors import EvalkitError, VideoDecodeError
from evalkit.video import DecodeOptions, decode_video

log = logging.getLogger(__name__)

# A worker dying, or the frames it made being lost with its node: the work is handed out again.
_LOST = (RayActorError, WorkerCrashedError, ObjectLostError)
_WAIT_S = 1.0  # how often the driver wakes with nothing finished (to notice restarts)
_RESTART_PAUSE_S = 1.0  # between probes of an actor that is still restarting


@dataclass(frozen=True)
class PoolPlan:
    """How many actors each pool has and what each reserves (``num_cpus``, ``num_gpus``)."""

    decode_workers: int
    model_workers: int
    decode_cpus: float
    model_cpus: float
    model_gpus: float

    @property
    def on_gpu(self) -> bool:
        return self.model_gpus > 0


def plan_pools(
    cluster: dict[str, float],
    decode_workers: int | None = None,
    model_workers: int | None = None,
    gpu_per_model_worker: float = 0.5,
    headroom_cpus: float = 1.0,
) -> PoolPlan:
    """Pool sizes and per-actor reservations for ``cluster`` (``ray.cluster_resources()``).

    With GPUs: ``1 / gpu_per_model_worker`` model actors per GPU, and decode actors on the CPUs.
    Without: one decode and one model actor per whole CPU, minimum one each. Reservations are
    fractions chosen so that all actors together leave ``headroom_cpus`` free.
    """
    cpus = float(cluster.get("CPU", 1.0))
    gpus = float(cluster.get("GPU", 0.0))
    if not 0 < gpu_per_model_worker <= 1:
        raise EvalkitError(f"gpu_per_model_worker: expected a fraction in (0, 1], got {gpu_per_model_worker}")
    if gpus > 0:
        model_workers = model_workers or max(1, int(gpus / gpu_per_model_worker))
    decode_workers = decode_workers or max(1, int(cpus) - (0 if gpus > 0 else int(cpus) // 2))
    model_workers = model_workers or max(1, int(cpus) // 2)
    # CPU actors reserve equal fractions; a GPU actor's host work is light, it reserves a quarter of that.
    weight = decode_workers + (model_workers / 4 if gpus > 0 else model_workers)
    share = max(0.01, min(1.0, (cpus - headroom_cpus) / weight))
    down = lambda x: math.floor(x * 1000) / 1000  # noqa: E731 (rounding up could claim the headroom)
    return PoolPlan(decode_workers, model_workers, decode_cpus=down(share),
                    model_cpus=down(share / 4 if gpus > 0 else share),
                    model_gpus=gpu_per_model_worker if gpus > 0 else 0.0)


class _Decoder:
    """Decode actor: a file path in, ``(video, (frames, fps, width, height))`` or ``(None, error)`` out."""

    def decode(self, path: str, digest: str, options: DecodeOptions) -> tuple[Any, Any]:
        try:
            video = decode_video(path, options, digest)
        except VideoDecodeError as exc:
            return None, str(exc)
        return video, (video.num_frames, video.fps, video.size[0], video.size[1])

    def pid(self) -> int:
        return os.getpid()


class _Scorer:
    """Model actor: landmarks and the batched detectors over a batch of decoded videos."""

    def __init__(self, runner: Any, threads: int) -> None:
        import torch

        if ray.get_gpu_ids():
            runner = runner.worker_copy(device="cuda")  # Ray sets CUDA_VISIBLE_DEVICES to its share
        else:
            torch.set_num_threads(threads)  # a CPU actor keeps to its share; several share a node
        self.runner = runner

    def score(self, specs: Sequence[tuple[Any, str, Sequence[str]]], *videos: Any) -> list[list[tuple[str, Any, str | None]]]:
        """``specs[i]``: (item, content hash, pending detector names) of ``videos[i]``. Returns,
        per video, ``(detector, result, error)`` for each pending detector."""
        jobs = [self.runner.decoded_job(item, digest, todo, video) for (item, digest, todo), video in zip(specs, videos)]
        index = {id(job): i for i, job in enumerate(jobs)}
        out: list[list[tuple[str, Any, str | None]]] = [[] for _ in jobs]
        for job, detector, outcome in self.runner.score_decoded(jobs):
            out[index[id(job)]].append((detector.name, outcome.result, outcome.error))
        return out

    def pid(self) -> int:
        return os.getpid()


@dataclass
class _Work:
    """One video's way through the pools."""

    job: Any
    attempts: int = 0
    video: Any = None  # ObjectRef of its decoded frames
    errors: list[str] = field(default_factory=list)


@dataclass
class _Slot:
    """One actor of a pool as the driver sees it."""

    actor: Any
    load: int = 0  # calls in its hands
    lost: bool = False  # it died; no work until a probe call answers (Ray restarts it)
    probe: Any = None  # ObjectRef of that probe call
    probe_at: float = 0.0  # when to probe again after a probe failed (still restarting)
    lost_at: float = 0.0  # when it was lost

    def free(self, depth: int) -> bool:
        return not self.lost and self.load < depth


class RayEngine:
    """Runs the runner's decode-and-score step on a Ray cluster (see the module docstring).

    Args:
        address: cluster to join; None: ``$RAY_ADDRESS``, or a local cluster (no dashboard).
            A cluster already joined in this process (``ray.init`` in a notebook) is used as is.
        decode_workers, model_workers: pool sizes; None: from the cluster (:func:`plan_pools`).
        gpu_per_model_worker: the GPU fraction each model actor reserves when there are GPUs.
        depth: videos a decode actor holds at once (one decoding, the next queued).
        max_retries: times a video is handed out again after its worker died.
        restart_timeout_s: how long a whole pool may stay dead before the run gives up.
    """

    def __init__(
        self,
        address: str | None = None,
        decode_workers: int | None = None,
        model_workers: int | None = None,
        gpu_per_model_worker: float = 0.5,
        depth: int = 2,
        max_retries: int = 3,
        restart_timeout_s: float = 300.0,
    ) -> None:
        self.address = address
        self.decode_workers = decode_workers
        self.model_workers = model_workers
        self.gpu_per_model_worker = gpu_per_model_worker
        self.depth = depth
        self.max_retries = max_retries
        self.restart_timeout_s = restart_timeout_s
        self.plan: PoolPlan | None = None
        self.decoders: list[Any] = []
        self.scorers: list[Any] = []
        self._started_ray = False
        self.handed_out_again = 0  # videos re-sent after their worker died (for logs and tests)

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r}, plan={self.plan})"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, runner: Any) -> None:
        """Join the cluster and start both pools (once)."""
        if self.decoders:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
            self._started_ray = True
        self.plan = plan_pools(ray.cluster_resources(), self.decode_workers, self.model_workers, self.gpu_per_model_worker)
        plan = self.plan
        log.info("ray engine: %s", plan)
        # max_restarts=-1: a dead actor comes back; its unfinished work is re-sent by the driver
        # (max_task_retries=0), which counts the tries and turns a video that kills workers into an error.
        # SPREAD: each pool over every node, so that no node's cores sit idle.
        common = {"max_restarts": -1, "max_task_retries": 0, "scheduling_strategy": "SPREAD"}
        decoder = ray.remote(num_cpus=plan.decode_cpus, **common)(_Decoder)
        scorer = ray.remote(num_cpus=plan.model_cpus, num_gpus=plan.model_gpus, **common)(_Scorer)
        threads = max(1, int(plan.model_cpus))
        self.decoders = [decoder.remote() for _ in range(plan.decode_workers)]
        self.scorers = [scorer.remote(runner.worker_copy(), threads) for _ in range(plan.model_workers)]

    def close(self) -> None:
        for actor in self.decoders + self.scorers:
            ray.kill(actor)
        self.decoders, self.scorers = [], []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # -- the pipeline ------------------------------------------------------------------------
    def execute(self, runner: Any, jobs: Sequence[Any], on_decoded: Callable[[Any], None]) -> Iterator[tuple[Any, str, Any, str | None]]:
        """Decode and score ``jobs`` (the runner's planned videos); yield ``(job, detector name,
        result, error)`` for each pending detector of each job, in the order they finish.
        ``on_decoded(job)`` is called once a job's ``meta`` (frames, fps, width, height) is known."""
        if not jobs:  # everything was already stored: no cluster needed
            return
        self.start(runner)
        waiting = deque(_Work(job) for job in jobs)  # not yet decoded
        decoded: deque[_Work] = deque()  # decoded, waiting for a model actor
        decoding: dict[Any, tuple[_Work, _Slot]] = {}  # meta ref -> (work, decoder)
        scoring: dict[Any, tuple[list[_Work], _Slot]] = {}  # result ref -> (batch, scorer)
        probes: dict[Any, _Slot] = {}
        decoders, scorers = [_Slot(a) for a in self.decoders], [_Slot(a) for a in self.scorers]
        buffer = 2 * len(scorers) * runner.batch_size  # backpressure bound on decoded frames

        while waiting or decoded or decoding or scoring:
            now = time.monotonic()
            for slot in decoders + scorers:
                if slot.lost and slot.probe is None and now >= slot.probe_at:
                    slot.probe = slot.actor.pid.remote()
                    probes[slot.probe] = slot
            for slot in decoders:
                while waiting and slot.free(self.depth) and len(decoded) + len(decoding) < buffer:
                    work = waiting.popleft()
                    work.video, meta = slot.actor.decode.options(num_returns=2).remote(
                        work.job.item.path, work.job.digest, runner.decode_options(work.job))
                    decoding[meta] = (work, slot)
                    slot.load += 1
            for slot in scorers:
                if decoded and slot.free(1):
                    batch = [decoded.popleft() for _ in range(min(runner.batch_size, len(decoded)))]
                    specs = [(w.job.item, w.job.digest, [d.name for d in w.job.todo]) for w in batch]
                    scoring[slot.actor.score.remote(specs, *[w.video for w in batch])] = (batch, slot)
                    slot.load += 1

            ready, _ = ray.wait([*decoding, *scoring, *probes], num_returns=1, timeout=_WAIT_S)
            for ref in ready:
                if ref in probes:
                    _answered(probes.pop(ref), ref)
                    continue
                work_or_batch, slot = decoding.pop(ref) if ref in decoding else scoring.pop(ref)
                slot.load -= 1
                if isinstance(work_or_batch, _Work):
                    lost = yield from self._decoded(work_or_batch, ref, waiting, decoded, on_decoded)
                else:
                    lost = yield from self._scored(work_or_batch, ref, waiting)
                if lost and not slot.lost:
                    slot.lost, slot.lost_at = True, time.monotonic()
            for pool, slots in (("decode", decoders), ("model", scorers)):
                if all(s.lost and time.monotonic() - s.lost_at > self.restart_timeout_s for s in slots):
                    raise EvalkitError(f"every {pool} worker has been lost for over {self.restart_timeout_s:g} s and none "
                                       "came back: the cluster cannot place them (see `ray status`)")

    def _decoded(self, work: _Work, ref: Any, waiting: deque, decoded: deque, on_decoded: Callable) -> Iterator[tuple[Any, str, Any, str | None]]:
        """Handles a finished decode; returns True when its worker was lost."""
        try:
            meta = ray.get(ref)
        except _LOST as exc:
            yield from self._retry([work], waiting, "decode", exc)
            return True
        except Exception as exc:  # a bug in decoding one file must not end the run
            yield from _fail([work], f"{work.job.item.path}: decoding failed ({type(exc).__name__}: {exc})")
            return False
        if isinstance(meta, str):  # the file cannot be decoded: an error row per pending detector
            log.error(meta)
            yield from _fail([work], meta)
            return False
        work.job.meta = tuple(meta)
        on_decoded(work.job)
        decoded.append(work)
        return False

    def _scored(self, batch: list[_Work], ref: Any, waiting: deque) -> Iterator[tuple[Any, str, Any, str | None]]:
        """Handles a finished batch; returns True when its worker was lost."""
        try:
            results = ray.get(ref)
        except _LOST as exc:
            # Decode again rather than trust frames that may have gone with the worker's node.
            yield from self._retry(batch, waiting, "model", exc)
            return True
        except Exception as exc:
            yield from _fail(batch, f"scoring failed on a Ray worker ({type(exc).__name__}: {exc})")
            return False
        for work, per_video in zip(batch, results):
            work.video = None  # frees the frames in the object store
            for name, result, error in per_video:
                yield work.job, name, result, error
        return False

    def _retry(self, batch: list[_Work], waiting: deque, stage: str, exc: Exception) -> Iterator[tuple[Any, str, Any, str | None]]:
        why = f"{stage} worker lost ({type(exc).__name__})"
        for work in batch:
            work.video = None
            work.attempts += 1
            work.errors.append(why)
            if work.attempts > self.max_retries:
                yield from _fail([work], f"{work.job.item.path}: gave up after {work.attempts} tries ({'; '.join(work.errors)})")
                continue
            self.handed_out_again += 1
            log.warning("%s: %s; handing it out again (try %d of %d)", work.job.item.path, why, work.attempts + 1, self.max_retries + 1)
            waiting.appendleft(work)


def _answered(slot: _Slot, probe: Any) -> None:
    """A lost actor's probe came back: it is up again, or still restarting (probe later)."""
    slot.probe = None
    try:
        ray.get(probe)
        slot.lost = False
    except _LOST:
        slot.probe_at = time.monotonic() + _RESTART_PAUSE_S


def _fail(batch: list[_Work], message: str) -> Iterator[tuple[Any, str, Any, str | None]]:
    for work in batch:
        for detector in work.job.todo:
            yield work.job, detector.name, None, message
