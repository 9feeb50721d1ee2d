"""Pure functions behind the review widgets: human verdicts from labels, detector thresholds,
calibration against labels, review-queue priority and blinded A/B win rates.

Conventions:
  - A label's ``failure_mode`` is a detector name (``"confetti"``, ``"blink"``...): the human
    verdict on the question that detector answers, so the two can be compared directly.
  - Clip verdicts are labels of kind ``"clip"`` with value ``"pass"`` or ``"fail"``; a label of
    kind ``"span"`` (frames ``start``..``end``, inclusive) means "fails here", so a reviewer
    with a span and no clip verdict says the clip fails. A reviewer's newest verdict wins;
    reviewers are combined by majority, and ties are left out as ambiguous.
  - Blinded A/B votes are labels of kind ``"ab"`` whose payload carries ``pair`` (the two
    checkpoints in the order the session named them), ``left``/``right`` checkpoints and
    ``choice`` (``"A"`` = left, ``"B"`` = right, ``"tie"``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from evalkit.aggregate import bootstrap_ci
from evalkit.registry import detector_facts

log = logging.getLogger(__name__)

VERDICTS = ("pass", "fail")


def detector_info(name: str) -> dict[str, Any]:
    """``{"higher_is_worse", "score_meaning", "failure_mode", "threshold"}`` of a detector, as a
    dict for the page (see :func:`evalkit.detector_facts`, which it reads); an unknown or
    broken one (e.g. a plug-in not installed here) gets neutral defaults."""
    facts = detector_facts(name)
    return {"higher_is_worse": facts.higher_is_worse, "score_meaning": facts.score_meaning,
            "failure_mode": facts.failure_mode, "threshold": facts.threshold}


def flag(scores: np.ndarray, threshold: float, higher_is_worse: bool) -> np.ndarray:
    """``(N,)`` bool: which ``scores`` the detector flags at ``threshold`` (NaN never flags)."""
    scores = np.asarray(scores, np.float64)
    with np.errstate(invalid="ignore"):
        return scores >= threshold if higher_is_worse else scores <= threshold


def verdict_threshold(scores: np.ndarray, flagged: np.ndarray, higher_is_worse: bool,
                      default: float | None = None) -> float:
    """The score threshold that best reproduces a detector's stored verdicts.

    Detectors flag with rules of their own (a threshold on a different statistic, several
    checks), so the threshold on the score scale is recovered from (score, flagged) pairs: the
    candidate (``default`` first, then midpoints between sorted scores) that agrees with the most
    verdicts. NaN scores are ignored; with no finite score the result is ``default`` or NaN.
    """
    scores = np.asarray(scores, np.float64)
    flagged = np.asarray(flagged, bool)
    keep = np.isfinite(scores)
    scores, flagged = scores[keep], flagged[keep]
    if scores.size == 0:
        return float("nan") if default is None else float(default)
    unique = np.unique(scores)
    mids = (unique[:-1] + unique[1:]) / 2
    edge = 1e-9 + 1e-6 * max(1.0, float(np.abs(unique).max()))
    candidates = np.concatenate([[default] if default is not None else [], mids, [unique[0] - edge, unique[-1] + edge]])
    # (C, N) agreement matrix; fine for the few thousand clips of a review session.
    agree = (flag(scores[None, :], candidates[:, None], higher_is_worse) == flagged[None, :]).sum(axis=1)
    return float(candidates[int(np.argmax(agree))])  # argmax takes the first best: default wins ties


def detector_thresholds(results: pd.DataFrame) -> dict[str, float]:
    """``{detector: threshold on its score scale}`` recovered from stored verdicts (see
    :func:`verdict_threshold`). ``results`` has columns detector, score, flagged."""
    out = {}
    for name, group in results.groupby("detector"):
        info = detector_info(str(name))
        out[str(name)] = verdict_threshold(group["score"].to_numpy(float), group["flagged"].to_numpy(bool),
                                           info["higher_is_worse"], info["threshold"])
    return out


def human_verdicts(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per (video_hash, failure_mode) that reviewers judged: columns video_hash,
    failure_mode, fails (bool), reviewers (how many judged). Ties between reviewers are dropped."""
    columns = ["video_hash", "failure_mode", "fails", "reviewers"]
    if labels is None or labels.empty:
        return pd.DataFrame(columns=columns)
    rows = labels[labels["kind"].isin(["clip", "span"]) & labels["failure_mode"].notna() & labels["video_hash"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(reviewer=rows["reviewer"].fillna(""))
    clip = rows[(rows["kind"] == "clip") & rows["value"].isin(VERDICTS)].sort_values("id")
    latest = clip.drop_duplicates(["video_hash", "failure_mode", "reviewer"], keep="last")
    per_reviewer = latest.assign(fails=latest["value"] == "fail")[["video_hash", "failure_mode", "reviewer", "fails"]]
    spans = rows[rows["kind"] == "span"].drop_duplicates(["video_hash", "failure_mode", "reviewer"])
    spans = spans.assign(fails=True)[["video_hash", "failure_mode", "reviewer", "fails"]]
    # A clip verdict from the same reviewer overrides their spans (they looked at the whole clip).
    merged = pd.concat([per_reviewer, spans]).drop_duplicates(["video_hash", "failure_mode", "reviewer"], keep="first")
    votes = merged.groupby(["video_hash", "failure_mode"])["fails"].agg(["sum", "count"]).reset_index()
    votes = votes[votes["sum"] * 2 != votes["count"]]
    return pd.DataFrame({
        "video_hash": votes["video_hash"], "failure_mode": votes["failure_mode"],
        "fails": votes["sum"] * 2 > votes["count"], "reviewers": votes["count"].astype(int),
    }, columns=columns).reset_index(drop=True)


def _confusion(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    tn = int((~truth & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else (0.0 if fp + fn else float("nan"))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1}


def best_f1_threshold(scores: np.ndarray, truth: np.ndarray, higher_is_worse: bool) -> tuple[float, float]:
    """``(threshold, F1)`` maximising F1 of ``flag(scores, threshold)`` against ``truth``; thresholds
    tried are the scores themselves. NaN pair when nothing is labelled or nothing fails."""
    scores = np.asarray(scores, np.float64)
    truth = np.asarray(truth, bool)
    if scores.size == 0 or not truth.any():
        return float("nan"), float("nan")
    candidates = np.unique(scores)
    predicted = flag(scores[None, :], candidates[:, None], higher_is_worse)  # (C, N)
    tp = (predicted & truth).sum(1)
    fp = (predicted & ~truth).sum(1)
    fn = (~predicted & truth).sum(1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = int(np.argmax(f1))
    return float(candidates[best]), float(f1[best])


def calibration_table(results: pd.DataFrame, labels: pd.DataFrame,
                      thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """Each detector's precision, recall and F1 against the human verdicts on its failure mode.

    Args:
        results: stored results (columns video_hash, detector, score, flagged).
        labels: the store's labels (see module docstring).
        thresholds: ``{detector: threshold}``; a detector not in it is judged by its stored
            ``flagged`` verdicts.

    Returns:
        One row per detector: detector, threshold (NaN: the detector's own verdicts), labelled,
        human_fails, skipped (labelled clips the detector could not judge), tp, fp, fn, tn,
        precision, recall, f1, best_threshold, best_f1.
    """
    thresholds = thresholds or {}
    truth = human_verdicts(labels)
    rows = []
    for name, group in results.drop_duplicates(["video_hash", "detector"], keep="last").groupby("detector"):
        name = str(name)
        info = detector_info(name)
        judged = truth[truth["failure_mode"] == name].merge(group, on="video_hash")
        finite = judged[np.isfinite(judged["score"].to_numpy(float))]
        scores = finite["score"].to_numpy(float)
        fails = finite["fails"].to_numpy(bool)
        threshold = thresholds.get(name)
        if threshold is None:
            predicted = finite["flagged"].to_numpy(bool)
        else:
            predicted = flag(scores, threshold, info["higher_is_worse"])
        best_t, best_f = best_f1_threshold(scores, fails, info["higher_is_worse"])
        rows.append({"detector": name, "threshold": float("nan") if threshold is None else float(threshold),
                     "labelled": int(len(finite)), "human_fails": int(fails.sum()),
                     "skipped": int(len(judged) - len(finite)), **_confusion(fails, predicted),
                     "best_threshold": best_t, "best_f1": best_f})
    columns = ["detector", "threshold", "labelled", "human_fails", "skipped", "tp", "fp", "fn", "tn",
               "precision", "recall", "f1", "best_threshold", "best_f1"]
    return pd.DataFrame(rows, columns=columns)


def queue_priority(results: pd.DataFrame, labels: pd.DataFrame,
                   thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """Rank clips for review: detectors unsure about them first, weighted by how often each
    detector has disagreed with the human verdicts collected so far.

    Per clip and detector, ``uncertainty = exp(-|score - threshold| / spread)`` (1 at the
    threshold; ``spread`` is the detector's robust score spread across clips; a skipped score
    counts 0.5). Each detector's weight is ``0.5 + disagreement`` with ``disagreement`` the
    Laplace-smoothed rate ``(k + 1) / (n + 2)`` of its verdicts contradicting the ``n`` human
    verdicts on its failure mode (0.5 before any label). ``priority`` is the largest weighted
    uncertainty, and ``reason`` names the detector that set it.

    Returns:
        One row per video_hash with columns video_hash, priority, reason, sorted by priority
        (highest first).
    """
    results = results.drop_duplicates(["video_hash", "detector"], keep="last")
    if results.empty:
        return pd.DataFrame(columns=["video_hash", "priority", "reason"])
    thresholds = {**detector_thresholds(results), **(thresholds or {})}
    truth = human_verdicts(labels)
    parts = []
    for name, group in results.groupby("detector"):
        name = str(name)
        info = detector_info(name)
        scores = group["score"].to_numpy(float)
        finite = scores[np.isfinite(scores)]
        q75, q25 = np.percentile(finite, [75, 25]) if finite.size else (1.0, 0.0)
        spread = (q75 - q25) / 1.349 or (float(finite.std()) if finite.size else 0.0) or 1.0
        threshold = thresholds.get(name, float("nan"))
        with np.errstate(invalid="ignore"):
            uncertainty = np.exp(-np.abs(scores - threshold) / spread)
        uncertainty = np.where(np.isfinite(uncertainty), uncertainty, 0.5)
        judged = truth[truth["failure_mode"] == name].merge(group, on="video_hash")
        judged = judged[np.isfinite(judged["score"].to_numpy(float))]
        wrong = (flag(judged["score"].to_numpy(float), threshold, info["higher_is_worse"]) != judged["fails"].to_numpy(bool))
        disagreement = (wrong.sum() + 1) / (len(judged) + 2)
        parts.append(pd.DataFrame({"video_hash": group["video_hash"].to_numpy(), "detector": name,
                                   "weighted": uncertainty * (0.5 + disagreement)}))
    per_detector = pd.concat(parts, ignore_index=True)
    top = per_detector.sort_values("weighted", ascending=False, kind="stable").drop_duplicates("video_hash")
    out = pd.DataFrame({"video_hash": top["video_hash"], "priority": top["weighted"], "reason": top["detector"]})
    return out.reset_index(drop=True)


def ab_win_rates(labels: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Win rates from blinded A/B votes, per checkpoint pair, with 95 % bootstrap CIs.

    ``win_rate`` is the first checkpoint's share of votes, a tie counting one half; the CI
    resamples votes. Returns columns checkpoint, other, votes, wins, losses, ties, win_rate,
    ci_low, ci_high (one row per pair, in the order the sessions named them).
    """
    columns = ["checkpoint", "other", "votes", "wins", "losses", "ties", "win_rate", "ci_low", "ci_high"]
    if labels is None or labels.empty:
        return pd.DataFrame(columns=columns)
    votes = labels[labels["kind"] == "ab"]
    outcomes: dict[tuple[str, str], list[float]] = {}
    for payload in votes["payload"]:
        if not isinstance(payload, dict) or payload.get("choice") not in ("A", "B", "tie"):
            continue
        first, second = payload["pair"]
        winner = {"A": payload["left"], "B": payload["right"], "tie": None}[payload["choice"]]
        outcomes.setdefault((first, second), []).append(0.5 if winner is None else float(winner == first))
    rows = []
    for (first, second), values in outcomes.items():
        v = np.asarray(values)
        low, high = bootstrap_ci(v, n_boot=n_boot, seed=seed)
        rows.append({"checkpoint": first, "other": second, "votes": int(v.size), "wins": int((v == 1).sum()),
                     "losses": int((v == 0).sum()), "ties": int((v == 0.5).sum()), "win_rate": float(v.mean()),
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=columns)
