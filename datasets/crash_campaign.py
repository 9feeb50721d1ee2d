"""Crash campaign: kill -9 `evalkit run` at random points, resume, and check that nothing is lost,
duplicated or different from an uninterrupted run.

    python -m evalkit.datasets.crash_campaign --kills 20 [--db postgresql://...] [--seed 0]

Each cycle starts from an empty store and kills successive runs at random points: at a random
count of stored results (0 included: during start-up) plus a random delay, so kills land before,
between and during store writes. After every kill the store must open, pass SQLite's integrity
check and hold only results equal to the uninterrupted run's; after each cycle a last run
completes the work and every (video, detector) result must exist exactly once and equal the
uninterrupted run's. Prints the counts; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DETECTORS = "framediff,temporal_flickering"  # cheap: the campaign measures the store, not the detectors
CHECKPOINTS = 3
CLIPS_PER_CHECKPOINT = 6


@dataclass
class CampaignCounts:
    kills: int = 0  # kill -9 delivered to a run still working
    kills_mid_work: int = 0  # ... after it had stored some but not all results
    finished_before_kill: int = 0  # runs that completed before their kill point (not counted as kills)
    resumes: int = 0  # uninterrupted runs completing a cycle
    trials_survived: int = 0  # kills after which the store was intact and held only correct results
    expected_rows: int = 0  # (video, detector) results per complete store
    rows_lost: int = 0  # summed over cycles: expected results missing after the resume
    rows_duplicated: int = 0
    rows_different: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"crash campaign: {self.kills} kill -9 ({self.kills_mid_work} mid-work, {self.finished_before_kill} runs "
                f"finished first and were not counted), {self.trials_survived}/{self.kills} trials survived, "
                f"{self.resumes} resumes of {self.expected_rows} results each: {self.rows_lost} rows lost, "
                f"{self.rows_duplicated} duplicated, {self.rows_different} different from the uninterrupted run")


def build_root(root: Path, seed: int = 0) -> Path:
    """``CHECKPOINTS`` x ``CLIPS_PER_CHECKPOINT`` small synthetic clips with prompts."""
    from evalkit.datasets.bad_inputs import encode, moving_pattern

    root.mkdir(parents=True)
    prompts = []
    for c in range(CHECKPOINTS):
        folder = root / f"ckpt_{c}"
        folder.mkdir()
        (folder / "checkpoint.json").write_text(json.dumps({"step": 1000 * (c + 1)}))
        for k in range(CLIPS_PER_CHECKPOINT):
            frames = moving_pattern(24, 96, 128, seed=seed * 1000 + c * 100 + k)
            if k % 3 == 0:
                frames[12:14] = 255 - frames[12:14]  # a glitch: events to compare, not just scores
            encode(folder / f"p{k}_s{c}.mp4", frames)
    prompts = [json.dumps({"id": f"p{k}", "prompt": f"clip {k}"}) for k in range(CLIPS_PER_CHECKPOINT)]
    (root / "prompts.jsonl").write_text("\n".join(prompts) + "\n")
    return root


def _command(root: Path, db: str | None) -> list[str]:
    command = [sys.executable, "-m", "evalkit.cli", "run", str(root), "--detectors", DETECTORS, "--workers", "0",
               "--no-report", "--no-progress"]
    return command + (["--db", db] if db else [])


def _open(root: Path, db: str | None):
    from evalkit.store import open_store

    return open_store(db, root=root)


def _stored_count(root: Path, db: str | None) -> int:
    """Results stored so far, read cheaply (polled while a run works)."""
    try:
        if db is None:
            import sqlite3

            if not (root / "evalkit.db").exists():
                return 0
            conn = sqlite3.connect(f"file:{root / 'evalkit.db'}?mode=ro", uri=True, timeout=5)
            try:
                return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except Exception:  # the first run is creating the store right now
        return 0


def _snapshot(root: Path, db: str | None) -> dict[tuple[str, str], dict]:
    """(video path relative to the root, detector) -> stored result, for comparison."""
    with _open(root, db) as store:
        frame = store.results_frame(latest_only=False, with_arrays=True)
    out: dict[tuple[str, str], list[dict]] = {}
    for row in frame.itertuples(index=False):
        key = (str(Path(row.video).relative_to(root.resolve())), row.detector)
        out.setdefault(key, []).append({"score": row.score, "flagged": bool(row.flagged), "events": row.events,
                                        "stats": row.stats, "series": row.series, "maps": row.maps})
    return out


def _same(a: dict, b: dict) -> bool:
    def arrays_equal(x, y) -> bool:
        return (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y, equal_nan=True))

    scores_equal = (np.isnan(a["score"]) and np.isnan(b["score"])) or a["score"] == b["score"]
    return (scores_equal and a["flagged"] == b["flagged"] and a["events"] == b["events"] and a["stats"] == b["stats"]
            and arrays_equal(a["series"], b["series"]) and arrays_equal(a["maps"], b["maps"]))


def _check(root: Path, db: str | None, reference: dict, complete: bool, counts: CampaignCounts, label: str) -> bool:
    """Whether the store is intact and every stored result equals the reference (and, when
    ``complete``, all are there exactly once). Counts what was lost, duplicated or different."""
    ok = True
    if db is None:
        import sqlite3

        with sqlite3.connect(root / "evalkit.db") as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            counts.failures.append(f"{label}: integrity check says {verdict}")
            ok = False
    stored = _snapshot(root, db)
    for key, rows in stored.items():
        if key not in reference:
            counts.failures.append(f"{label}: unexpected result {key}")
            ok = False
        if len(rows) > 1:
            counts.rows_duplicated += len(rows) - 1 if complete else 0
            counts.failures.append(f"{label}: {key} stored {len(rows)} times")
            ok = False
        if key in reference and not all(_same(r, reference[key][0]) for r in rows):
            counts.rows_different += 1 if complete else 0
            counts.failures.append(f"{label}: {key} differs from the uninterrupted run")
            ok = False
    if complete:
        missing = [k for k in reference if k not in stored]
        counts.rows_lost += len(missing)
        if missing:
            counts.failures.append(f"{label}: {len(missing)} results missing after the resume, e.g. {missing[:3]}")
            ok = False
    return ok


def _reset(root: Path, db: str | None) -> None:
    if db is None:
        for path in root.glob("evalkit.db*"):
            path.unlink()
    else:
        with _open(root, db) as store:
            for table in ("results", "items", "errors"):
                store._execute(f"DELETE FROM {table}")


def run_campaign(kills: int = 20, db: str | None = None, seed: int = 0, budget_s: float = 600.0,
                 workdir: Path | None = None, kills_per_cycle: int = 3, log=print) -> CampaignCounts:
    """Run the campaign; see the module docstring."""
    rng = random.Random(seed)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="evalkit-crash-")) if workdir is None else workdir
    counts = CampaignCounts()
    try:
        clean = build_root(workdir / "clean", seed)
        root = workdir / "crash"
        shutil.copytree(clean, root)
        done = subprocess.run(_command(clean, None), capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"the uninterrupted run failed: {done.stderr[-2000:]}")
        reference = _snapshot(clean, None)
        counts.expected_rows = len(reference)
        total = counts.expected_rows
        _reset(root, db)
        in_cycle = 0

        def resume_and_check() -> None:
            resumed = subprocess.run(_command(root, db), capture_output=True, text=True, timeout=300)
            counts.resumes += 1
            if resumed.returncode != 0:
                counts.failures.append(f"resume {counts.resumes} exited {resumed.returncode}: {resumed.stderr[-500:]}")
            _check(root, db, reference, complete=True, counts=counts, label=f"resume {counts.resumes}")
            _reset(root, db)

        while counts.kills < kills:
            if time.monotonic() - started > budget_s:
                counts.failures.append(f"time budget of {budget_s:.0f} s spent after {counts.kills} kills")
                break
            before = _stored_count(root, db)
            if before >= total:  # the last kill came after the last write: resume now
                resume_and_check()
                in_cycle = 0
                continue
            target = rng.randint(before, total - 1)  # kill once this many results are stored ...
            delay = rng.uniform(0.0, 0.25)  # ... and a little later, wherever the run then is
            proc = subprocess.Popen(_command(root, db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while proc.poll() is None and _stored_count(root, db) < target:
                time.sleep(0.02)
            time.sleep(delay)
            if proc.poll() is not None:
                counts.finished_before_kill += 1
                _reset(root, db)  # complete: start a new cycle so kills keep landing mid-work
                in_cycle = 0
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            counts.kills += 1
            stored = _stored_count(root, db)
            counts.kills_mid_work += 0 < stored < total
            if _check(root, db, reference, complete=False, counts=counts, label=f"kill {counts.kills}"):
                counts.trials_survived += 1
            log(f"kill {counts.kills}: at {stored}/{total} stored results")
            in_cycle += 1
            if in_cycle >= kills_per_cycle or counts.kills == kills:
                resume_and_check()
                in_cycle = 0
    finally:
        if workdir.name.startswith("evalkit-crash-"):
            shutil.rmtree(workdir, ignore_errors=True)
    log(counts.summary())
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--db", help="a postgresql:// URL (default: the root's SQLite store)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=600.0, help="stop after this many seconds")
    args = parser.parse_args(argv)
    counts = run_campaign(args.kills, args.db, args.seed, args.budget_s)
    for failure in counts.failures:
        print("FAILED:", failure)
    return 1 if counts.failures else 0


if __name__ == "__main__":
    sys.exit(main())
