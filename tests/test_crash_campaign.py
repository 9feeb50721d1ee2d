"""The crash campaign (evalkit.datasets.crash_campaign): 20 kill -9 at random points of `evalkit run`;
after resuming, every (video, detector) result exists exactly once and equals an uninterrupted
run's. Bounded: 18 small clips, two cheap detectors, a time budget."""

from __future__ import annotations

import pytest

from evalkit.datasets.crash_campaign import run_campaign

pytestmark = pytest.mark.slow


def _assert_survived(counts, kills: int) -> None:
    assert not counts.failures, "\n".join(counts.failures)
    assert counts.kills == kills and counts.trials_survived == kills
    assert counts.kills_mid_work >= kills // 2  # the kills really landed while results were being written
    assert counts.resumes >= kills // 3 and counts.expected_rows == 36
    assert counts.rows_lost == counts.rows_duplicated == counts.rows_different == 0


def test_twenty_kills_lose_nothing(tmp_path, reliability_counts):
    counts = run_campaign(kills=20, seed=20, budget_s=600, workdir=tmp_path)
    reliability_counts(f"[sqlite] {counts.summary()}")
    _assert_survived(counts, 20)


@pytest.mark.postgres
def test_kills_lose_nothing_on_postgres(tmp_path, postgres_db, reliability_counts):
    counts = run_campaign(kills=6, db=postgres_db, seed=6, budget_s=300, workdir=tmp_path)
    reliability_counts(f"[postgresql] {counts.summary()}")
    _assert_survived(counts, 6)
