"""Validate the confetti detector against the VBench-style temporal-flickering baseline.

    python -m evalkit.datasets.confetti_eval [--per-source 4] [--clip-s 2.0] [--max-frames N]

Builds the ``"tune"`` and the held-out ``"eval"`` labelled sets of :mod:`evalkit.datasets.confetti`,
scores both with both methods and prints ROC-AUC, precision and recall at the default threshold,
the false-positive rate on the negatives (per kind), and burst localisation. The confetti
detector's threshold is its fixed default; the baseline has none of its own for this task, so
its video and frame thresholds are set on the tune split (95th percentile of the negatives).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evalkit._types import DetectorResult, Event, Video, VideoInputs
from evalkit.datasets.confetti import SWEEP_HEIGHTS, LabelledClip, labelled_set, real_set, resolution_sweep
from evalkit.detectors.confetti import ConfettiDetector, series_events
from evalkit.detectors.temporal_flickering import TemporalFlickeringDetector

log = logging.getLogger(__name__)


def clip_inputs(clip: LabelledClip) -> VideoInputs:
    """Wrap a labelled clip as the runner would hand it to a detector."""
    frames = torch.from_numpy(np.ascontiguousarray(clip.frames)).permute(0, 3, 1, 2).contiguous()
    video = Video(
        path=clip.name,
        frames=frames,
        fps=clip.fps,
        frame_indices=np.arange(len(clip.frames)),
        source_size=(clip.frames.shape[2], clip.frames.shape[1]),
        source_fps=clip.fps,
        content_hash=clip.name,
    )
    return VideoInputs(video=video)


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count one half); higher score = positive."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@dataclass
class Report:
    """Validation numbers of one method on one labelled set."""

    method: str
    auc: float
    precision: float
    recall: float
    fpr: float
    bursts_localised: float
    fpr_by_kind: dict[str, float] = field(default_factory=dict)
    recall_by_density: dict[float, float] = field(default_factory=dict)

    def row(self) -> str:
        return (
            f"{self.method:22s} AUC {self.auc:5.3f}  precision {self.precision:5.3f}  recall {self.recall:5.3f}  "
            f"FPR(neg) {self.fpr:5.3f}  bursts localised {self.bursts_localised:5.3f}"
        )


def evaluate(
    method: str, clips: Sequence[LabelledClip], scores: Sequence[float], flagged: Sequence[bool], events: Sequence[list[Event]]
) -> Report:
    """Scores are "higher is worse"; ``events`` per clip localise bursts (an event overlaps the range)."""
    labels = np.array([c.positive for c in clips])
    flags = np.asarray(flagged, bool)
    tp, fp = int((flags & labels).sum()), int((flags & ~labels).sum())
    hits, total = 0, 0
    for clip, found in zip(clips, events):
        for start, end in clip.bursts:
            total += 1
            hits += any(e.start <= end and e.end >= start for e in found)
    fpr_by_kind = {}
    for kind in sorted({c.kind for c in clips if not c.positive}):
        members = [i for i, c in enumerate(clips) if c.kind == kind]
        fpr_by_kind[kind] = float(flags[members].mean())
    recall_by_density = {}
    for density in sorted({c.params["density"] for c in clips if c.positive and "density" in c.params}):
        members = [i for i, c in enumerate(clips) if c.positive and c.params.get("density") == density]
        recall_by_density[density] = float(flags[members].mean())
    return Report(
        method=method,
        auc=roc_auc(scores, labels),
        precision=tp / max(1, int(flags.sum())),
        recall=tp / max(1, int(labels.sum())),
        fpr=fp / max(1, int((~labels).sum())),
        bursts_localised=hits / max(1, total),
        fpr_by_kind=fpr_by_kind,
        recall_by_density=recall_by_density,
    )


def run_confetti(clips: Sequence[LabelledClip], detector: ConfettiDetector | None = None) -> list[DetectorResult]:
    detector = detector or ConfettiDetector()
    return detector.score_batch([clip_inputs(c) for c in clips])


def run_flicker(clips: Sequence[LabelledClip]) -> list[DetectorResult]:
    return TemporalFlickeringDetector().score_batch([clip_inputs(c) for c in clips])


@dataclass
class FlickerThresholds:
    """Baseline thresholds set on the tune split: video-level and frame-level flicker (mean |diff|)."""

    video: float
    frame: float

    @classmethod
    def from_negatives(cls, clips: Sequence[LabelledClip], results: Sequence[DetectorResult], quantile: float = 0.95) -> FlickerThresholds:
        neg = [r for c, r in zip(clips, results) if not c.positive]
        video = float(np.quantile([1.0 - r.score for r in neg], quantile))
        frame = float(np.quantile(np.concatenate([r.series[1:] for r in neg]), quantile))
        return cls(video=video, frame=frame)


def confetti_report(clips: Sequence[LabelledClip], results: Sequence[DetectorResult]) -> Report:
    return evaluate(
        "confetti", clips, [r.score for r in results], [r.flagged for r in results], [r.events for r in results]
    )


def flicker_report(clips: Sequence[LabelledClip], results: Sequence[DetectorResult], thresholds: FlickerThresholds) -> Report:
    flicker = [1.0 - r.score for r in results]
    events = [series_events(r.series, thresholds.frame, 0, "flicker") for r in results]
    return evaluate("temporal_flickering", clips, flicker, [f > thresholds.video for f in flicker], events)


def validate(split_kwargs: dict[str, Any]) -> dict[str, Report]:
    """Tune-split calibration of the baseline, then both methods on the held-out eval split."""
    tune = labelled_set("tune", **split_kwargs)
    thresholds = FlickerThresholds.from_negatives(tune, run_flicker(tune))
    reports = {"tune/confetti": confetti_report(tune, run_confetti(tune))}
    held_out = labelled_set("eval", **split_kwargs)
    reports["eval/confetti"] = confetti_report(held_out, run_confetti(held_out))
    reports["eval/temporal_flickering"] = flicker_report(held_out, run_flicker(held_out), thresholds)
    reports["counts"] = {  # type: ignore[assignment]
        "tune": (len(tune), sum(c.positive for c in tune)),
        "eval": (len(held_out), sum(c.positive for c in held_out)),
    }
    return reports


@dataclass
class RealReport:
    """The detector on :func:`~evalkit.datasets.confetti.real_set` of one split."""

    split: str
    report: Report
    rows: list[tuple[str, str, bool, float, bool, bool]]  # name, kind, positive, score, flagged, burst found
    bursts_by_kind: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        neg = [r for r in self.rows if not r[2]]
        kinds = sorted({r[1] for r in neg})
        return (
            f"{self.split}: {len(self.rows)} clips ({len(self.rows) - len(neg)} positive); {self.report.row()}\n"
            f"      negatives flagged: {sum(r[4] for r in neg)} of {len(neg)} ({', '.join(kinds)}); "
            f"largest negative score {max(r[3] for r in neg):.3f}\n"
            f"      bursts localised by kind: {self.bursts_by_kind}"
        )


def validate_real(split: str, detector: ConfettiDetector | None = None, length: int = 24, seed: int | None = None) -> RealReport:
    """Score :func:`real_set` clip by clip (HD frames are dropped once scored)."""
    detector = detector or ConfettiDetector()
    stubs, results = [], []
    for clip in real_set(split, length=length, seed=seed):
        results.append(detector.score(clip_inputs(clip)))
        clip.frames = clip.frames[:0]
        stubs.append(clip)
        log.info("%-50s %6.3f %s", clip.name, results[-1].score, [(e.start, e.end) for e in results[-1].events])
    report = confetti_report(stubs, results)
    found = [any(e.start <= end and e.end >= start for e in r.events for start, end in c.bursts) for c, r in zip(stubs, results)]
    rows = [(c.name, c.kind, c.positive, r.score, r.flagged, f) for c, r, f in zip(stubs, results, found)]
    by_kind = {k: float(np.mean([f for c, f in zip(stubs, found) if c.kind == k])) for k in sorted({c.kind for c in stubs if c.positive})}
    return RealReport(split, report, rows, by_kind)


def sweep_table(detector: ConfettiDetector | None = None, heights: Sequence[int] = SWEEP_HEIGHTS) -> str:
    """The resolution sweep of the docs: 1-3 px specks at 144p, 360p, 720p and 1080p (``heights``)."""
    detector = detector or ConfettiDetector()
    lines = ["| size | clean score | clean events | specks score | specks events | burst |", "|---|---|---|---|---|---|"]
    for clean, specks in resolution_sweep(heights):
        a, b = detector.score(clip_inputs(clean)), detector.score(clip_inputs(specks))
        ev = lambda r: ", ".join(f"{e.start}-{e.end}" for e in r.events) or "none"  # noqa: E731
        size = f"{specks.frames.shape[2]}x{specks.frames.shape[1]}"
        lines.append(f"| {size} | {a.score:.3f} | {ev(a)} | {b.score:.3f} | {ev(b)} | {specks.bursts[0][0]}-{specks.bursts[0][1]} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-source", type=int, default=4, help="sparkle clips (and as many negatives) per source")
    parser.add_argument("--clip-s", type=float, default=2.0, help="clip duration in seconds")
    parser.add_argument("--max-frames", type=int, default=None, help="cap frames per clip")
    parser.add_argument("--real", choices=("tune", "report", "both"), help="only the real-footage HD set (issue #18)")
    parser.add_argument("--sweep", action="store_true", help="only the resolution sweep")
    parser.add_argument("--sweep-heights", type=int, nargs="+", default=list(SWEEP_HEIGHTS),
                        help="frame heights of the sweep (e.g. add 2160; its frames take about 25 MB each)")
    parser.add_argument("--real-seed", type=int, default=None, help="another sample of the real set's sources and kinds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    began = time.perf_counter()
    if args.sweep or args.real:
        if args.sweep:
            print(sweep_table(heights=args.sweep_heights))
            print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB")
        for split in ("tune", "report") if args.real == "both" else (args.real,) if args.real else ():
            print(validate_real(split, seed=args.real_seed).summary())
        print(f"took {time.perf_counter() - began:.0f} s")
        return
    reports = validate({"per_source": args.per_source, "clip_s": args.clip_s, "max_frames": args.max_frames})
    counts = reports.pop("counts")
    print(f"labelled clips (total, positive): tune {counts['tune']}, eval {counts['eval']}")  # type: ignore[index]
    for key, report in reports.items():
        print(f"{key.split('/')[0]:5s} {report.row()}")
        print(f"      FPR by negative kind: {report.fpr_by_kind}")
        print(f"      recall by density:    {report.recall_by_density}")
    print(f"took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
