"""Per-checkpoint aggregates with bootstrap confidence intervals, and regression alerts.

A regression is a checkpoint significantly worse than the one before it on a detector: the
bootstrap CI of the mean difference (paired by prompt id and seed where both checkpoints have
the clip) lies entirely on the worse side and exceeds ``min_effect`` in the detector's units.
A detector that defines a paired score (``paired_score(stats, reference_stats)``, e.g.
``expression``: log2 of how much further a face deforms than in the same prompt and seed at the
reference checkpoint) is compared on it where the checkpoints share clips (:func:`paired_comparisons`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.layout import STAGES
from evalkit.registry import detector_facts


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of 1-D ``values`` (NaNs dropped)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def checkpoint_order(checkpoints: pd.DataFrame) -> list[str]:
    """Checkpoint names ordered by step, then stage, then name. ``checkpoints`` has columns
    name, step, stage."""
    stage_rank = {s: i for i, s in enumerate(STAGES)}
    rows = checkpoints.assign(
        _step=checkpoints["step"].fillna(np.inf), _stage=checkpoints["stage"].map(stage_rank).fillna(len(STAGES))
    )
    return list(rows.sort_values(["_step", "_stage", "name"])["name"])


def summarize(results: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """One row per (checkpoint, detector): n, mean score with 95 % bootstrap CI, flagged rate.

    ``results`` is :func:`evalkit.load_results` output (columns checkpoint, detector, score, flagged).
    """
    rows = []
    for (checkpoint, detector), group in results.groupby(["checkpoint", "detector"], sort=False):
        scores = group["score"].to_numpy(np.float64)
        finite = scores[np.isfinite(scores)]
        low, high = bootstrap_ci(finite)
        rows.append({
            "checkpoint": checkpoint, "detector": detector, "n": int(finite.size), "skipped": int(len(group) - finite.size),
            "mean": float(finite.mean()) if finite.size else float("nan"), "ci_low": low, "ci_high": high,
            "flagged_rate": float(group["flagged"].astype(bool).mean()) if len(group) else float("nan"),
        })
    out = pd.DataFrame(rows, columns=["checkpoint", "detector", "n", "skipped", "mean", "ci_low", "ci_high", "flagged_rate"])
    if order is not None:
        rank = {c: i for i, c in enumerate(order)}
        out = out.assign(_r=out["checkpoint"].map(rank)).sort_values(["_r", "detector"]).drop(columns="_r")
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class Regression:
    detector: str
    previous: str
    checkpoint: str
    delta: float  # mean change in the worse direction (> 0 is worse)
    ci_low: float
    ci_high: float
    paired: int
    measure: str = "score"  # what delta is a mean of: the score difference, or the detector's paired score

    def message(self) -> str:
        of = "" if self.measure == "score" else f" in {self.measure}"
        return (f"REGRESSION {self.detector}: {self.checkpoint} is worse than {self.previous} by {self.delta:.3g}{of} "
                f"(95% CI {self.ci_low:.3g}..{self.ci_high:.3g}, {self.paired} paired clips)")


PairedScore = Callable[[dict[str, Any], dict[str, Any]], float]


def _with_clip_key(results: pd.DataFrame) -> pd.DataFrame:
    df = results[np.isfinite(results["score"].astype(float))].copy()
    # .map(str), not .astype(str): pandas 3 keeps None as missing in string dtype
    df["clip"] = df["prompt_id"].map(str) + "#" + df["seed"].map(lambda s: "" if s is None or pd.isna(s) else str(int(s)))
    return df


def _paired_values(group: pd.DataFrame, previous: str, current: str, paired_score: PairedScore) -> np.ndarray:
    """The detector's paired score of each clip of ``current`` against the same clip (prompt id
    and seed) of ``previous``, NaNs dropped."""
    a = group[group["checkpoint"] == previous].set_index("clip")["stats"]
    b = group[group["checkpoint"] == current].set_index("clip")["stats"]
    common = a.index.intersection(b.index)
    values = np.array([paired_score(b[c], a[c]) if isinstance(b[c], dict) and isinstance(a[c], dict) else np.nan
                       for c in common], np.float64)
    return values[np.isfinite(values)]


def paired_comparisons(
    results: pd.DataFrame, order: list[str], paired_scores: dict[str, PairedScore],
    stages: dict[str, str | None] | None = None, n_boot: int = 2000, seed: int = 0,
) -> pd.DataFrame:
    """Each checkpoint against the previous one in ``order`` on the clips both have (same prompt
    id and seed), for detectors that define a paired score (``paired_scores``: detector ->
    ``(stats, reference stats) -> float``, > 0 worse).

    Returns one row per (detector, checkpoint): columns detector, reference, checkpoint, paired
    (clips), mean paired score with its 95 % bootstrap CI (ci_low, ci_high), worse (clips > 0).
    """
    stages = stages or {}
    df = _with_clip_key(results)
    rows = []
    for detector, paired_score in sorted(paired_scores.items()):
        group = df[df["detector"] == detector]
        present = [c for c in order if c in set(group["checkpoint"])]
        for previous, current in zip(present, present[1:]):
            if (stages.get(previous) == "image") != (stages.get(current) == "image"):
                continue
            values = _paired_values(group, previous, current, paired_score)
            if values.size:
                low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
                rows.append({"detector": detector, "reference": previous, "checkpoint": current, "paired": int(values.size),
                             "mean": float(values.mean()), "ci_low": low, "ci_high": high, "worse": int((values > 0).sum())})
    return pd.DataFrame(rows, columns=["detector", "reference", "checkpoint", "paired", "mean", "ci_low", "ci_high", "worse"])


def find_regressions(
    results: pd.DataFrame, order: list[str], higher_is_worse: dict[str, bool], min_effect: float = 0.0,
    n_boot: int = 2000, seed: int = 0, stages: dict[str, str | None] | None = None,
    paired_scores: dict[str, PairedScore] | None = None,
) -> list[Regression]:
    """Compare each checkpoint with the previous one in ``order``, per detector.

    ``stages`` maps checkpoint -> curriculum stage: a still-image checkpoint is not compared with
    a video one (temporal detectors have nothing to see in stills, so any video looks "worse").
    ``paired_scores``: detector -> ``(stats, reference stats) -> float`` (> 0 worse); where
    at least 3 clips are shared, such a detector is tested on its paired score instead of
    the difference of scores (``min_effect`` then in the paired score's units).
    """
    stages = stages or {}
    paired_scores = paired_scores or {}
    found = []
    df = _with_clip_key(results)
    rng = np.random.default_rng(seed)
    for detector, group in df.groupby("detector"):
        sign = 1.0 if higher_is_worse.get(detector, True) else -1.0
        present = [c for c in order if c in set(group["checkpoint"])]
        for previous, current in zip(present, present[1:]):
            if (stages.get(previous) == "image") != (stages.get(current) == "image"):
                continue
            a = group[group["checkpoint"] == previous].set_index("clip")["score"]
            b = group[group["checkpoint"] == current].set_index("clip")["score"]
            common = a.index.intersection(b.index)
            measure = "score"
            # results stored before the detector kept what its paired score reads fall back
            paired = _paired_values(group, previous, current, paired_scores[detector]) if detector in paired_scores else np.zeros(0)
            if len(common) >= 3 and paired.size >= 3:
                diff, measure = paired, "paired score"
                boots = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1)
            elif len(common) >= 3:
                diff = sign * (b.loc[common].to_numpy(float) - a.loc[common].to_numpy(float))
                boots = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1)
            elif len(a) >= 3 and len(b) >= 3:
                av, bv = a.to_numpy(float), b.to_numpy(float)
                boots = sign * (bv[rng.integers(0, bv.size, (n_boot, bv.size))].mean(1)
                                - av[rng.integers(0, av.size, (n_boot, av.size))].mean(1))
                diff = np.array([sign * (bv.mean() - av.mean())])
            else:
                continue
            low, high = np.quantile(boots, [0.025, 0.975])
            delta = float(diff.mean())
            if low > 0 and delta > min_effect:
                found.append(Regression(str(detector), previous, current, delta, float(low), float(high),
                                        int(diff.size if measure != "score" else len(common)), measure))
    return found


def detector_aggregates(results: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Checkpoint-level aggregates that detectors define themselves (``checkpoint_aggregate``
    static method over the clips' ``stats``; e.g. blinks per face-minute pooled over clips).

    Returns one row per (checkpoint, detector) with the aggregate's fields as columns.
    """
    rows = []
    for detector in sorted(results["detector"].unique()):
        aggregate = detector_facts(detector).checkpoint_aggregate
        if aggregate is None:
            continue
        part = results[results["detector"] == detector]
        for checkpoint in order or sorted(part["checkpoint"].dropna().unique()):
            stats = [s for s in part.loc[part["checkpoint"] == checkpoint, "stats"] if isinstance(s, dict)]
            if stats:
                rows.append({"checkpoint": checkpoint, "detector": detector, **aggregate(stats)})
    return pd.DataFrame(rows)
