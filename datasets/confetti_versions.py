"""The confetti detector against an earlier version of itself, on fresh samples of the eval split.

    python -m evalkit.datasets.confetti_versions --against 2204693 [COMMIT ...] --seeds 11 12 13

The eval split's published numbers come from one sample (seed 161803, 34 clips, 285
positive-negative pairs), where one pair moves the ROC-AUC by 0.0035. This harness draws more
samples of the same design (same sources, sizes, densities, speck styles and negative kinds;
``labelled_set("eval", seed=...)``) and scores each with the current detector and with the
detector as it was at a git commit, on the same clips in one process, so the two versions are
compared on hundreds of pairs instead of one sample's.

The earlier detector is read from the repository's history (``git show COMMIT:detectors/...``)
into a temporary module: it needs a git checkout, and is a development tool, not part of the
installed package's surface.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from evalkit.datasets.confetti import LabelledClip, labelled_set
from evalkit.datasets.confetti_eval import Report, clip_inputs, confetti_report
from evalkit.detectors.confetti import ConfettiDetector

REPO = Path(__file__).resolve().parents[1]


def detector_at(commit: str) -> ModuleType:
    """The confetti detector module (and its block-motion helpers) as of ``commit``.

    Raises:
        RuntimeError: naming the commit and file when ``git show`` cannot read them.
    """
    out = Path(tempfile.mkdtemp(prefix=f"confetti-{commit}-"))
    sources = {}
    for name in ("blockmotion", "confetti"):
        try:
            sources[name] = subprocess.run(
                ["git", "-C", str(REPO), "show", f"{commit}:detectors/{name}.py"],
                check=True, capture_output=True, text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            raise RuntimeError(f"confetti_versions: cannot read detectors/{name}.py at {commit}: {detail}") from exc
    tag = f"_at_{commit}"
    sources["confetti"] = sources["confetti"].replace(
        "from evalkit.detectors.blockmotion import", f"from blockmotion{tag} import"
    )
    sys.path.insert(0, str(out))
    modules = {}
    for name in ("blockmotion", "confetti"):
        path = out / f"{name}{tag}.py"
        path.write_text(sources[name])
        spec = importlib.util.spec_from_file_location(f"{name}{tag}", path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"confetti_versions: cannot load {path} (detectors/{name}.py at {commit})")
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[f"{name}{tag}"] = modules[name]
        spec.loader.exec_module(modules[name])
    return modules["confetti"]


def misordered_pairs(clips: Sequence[LabelledClip], scores: Sequence[float]) -> float:
    """Positive-negative pairs where the negative scores higher (ties count one half)."""
    s = np.asarray(scores, np.float64)
    y = np.array([c.positive for c in clips])
    pos, neg = s[y], s[~y]
    return float((pos[:, None] < neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())


def compare(
    seeds: Sequence[int], against: Sequence[str], per_source: int, clip_s: float
) -> list[tuple[int, str, Report, float, int]]:
    """Rows ``(seed, version, report, misordered pairs, pairs)`` for the current detector and the
    one at each commit of ``against``, on each seed's sample."""
    detectors = [(f"v{ConfettiDetector.version}", ConfettiDetector())]
    for commit in against:
        old = detector_at(commit).ConfettiDetector()
        detectors.append((f"v{old.version} ({commit})", old))
    rows = []
    for seed in seeds:
        clips = labelled_set("eval", clip_s=clip_s, per_source=per_source, seed=seed)
        pairs = sum(c.positive for c in clips) * sum(not c.positive for c in clips)
        for label, detector in detectors:
            results = detector.score_batch([clip_inputs(c) for c in clips])
            rows.append((seed, label, confetti_report(clips, results), misordered_pairs(clips, [r.score for r in results]), pairs))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", nargs="+", default=["2204693"], help="git commits of earlier detectors (default: version 2's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[161803], help="eval-split samples (161803: the published one)")
    parser.add_argument("--per-source", type=int, default=3)
    parser.add_argument("--clip-s", type=float, default=1.6)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows = compare(args.seeds, args.against, args.per_source, args.clip_s)
    totals: dict[str, list[float]] = {}
    for seed, label, report, bad, pairs in rows:
        print(f"seed {seed:>9d} {label:18s} misordered {bad:4.1f}/{pairs} {report.row()}", flush=True)
        print(f"          FPR by negative kind: {report.fpr_by_kind}", flush=True)
        t = totals.setdefault(label, [0.0, 0, 0.0, 0.0])
        t[0] += bad
        t[1] += pairs
        t[2] += report.fpr
        t[3] += report.bursts_localised
    n = len(args.seeds)
    for label, (bad, pairs, fpr, bursts) in totals.items():
        print(f"all seeds {label:18s} misordered {bad:.1f}/{pairs} (pairwise AUC {1 - bad / pairs:.4f}); "
              f"mean FPR {fpr / n:.3f}, mean bursts localised {bursts / n:.3f}")
    print(f"took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
