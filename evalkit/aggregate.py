"""Per-checkpoint aggregates with bootstrap confidence intervals, and regression alerts.

A regression is a checkpoint significantly worse than the one before it on a detector: the
bootstrap CI of the mean difference (paired by prompt id and seed where both checkpoints have
the clip) lies entirely on the worse side and exceeds ``min_effect`` in the detector's units.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def message(self) -> str:
        return (f"REGRESSION {self.detector}: {self.checkpoint} is worse than {self.previous} by {self.delta:.3g} "
                f"(95% CI {self.ci_low:.3g}..{self.ci_high:.3g}, {self.paired} paired clips)")


def find_regressions(
    results: pd.DataFrame, order: list[str], higher_is_worse: dict[str, bool], min_effect: float = 0.0,
    n_boot: int = 2000, seed: int = 0, stages: dict[str, str | None] | None = None,
) -> list[Regression]:
    """Compare each checkpoint with the previous one in ``order``, per detector.

    ``stages`` maps checkpoint -> curriculum stage: a still-image checkpoint is not compared with
    a video one (temporal detectors have nothing to see in stills, so any video looks "worse").
    """
    stages = stages or {}
    found = []
    df = results[np.isfinite(results["score"].astype(float))].copy()
    # .map(str), not .astype(str): pandas 3 keeps None as missing in string dtype
    df["clip"] = df["prompt_id"].map(str) + "#" + df["seed"].map(lambda s: "" if s is None or pd.isna(s) else str(int(s)))
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
            if len(common) >= 3:
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
                found.append(Regression(str(detector), previous, current, delta, float(low), float(high), int(len(common))))
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
