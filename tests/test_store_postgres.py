"""A team's PostgreSQL store end to end: `evalkit run`, `results`, `report` and the review
widgets with ``--db postgresql://...`` or ``EVALKIT_DB`` give what the SQLite default gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.batch import run_root
from evalkit.cli import main
from evalkit.store import load_results, open_store

pytestmark = pytest.mark.postgres


def _exported(capsys, *argv: str) -> list[dict]:
    assert main(["results", *argv, "--format", "jsonl"]) == 0
    return sorted((json.loads(x) for x in capsys.readouterr().out.splitlines()), key=lambda r: (r["video"], r["detector"]))


def test_run_results_report_and_widgets_on_postgres(small_root, postgres_db, capsys, monkeypatch):
    monkeypatch.delenv("EVALKIT_DB", raising=False)
    on_sqlite = run_root(small_root, detectors=["framediff"], workers=0, write_report=False)
    on_postgres = run_root(small_root, detectors=["framediff"], workers=0, db=postgres_db)
    assert on_sqlite.computed == on_postgres.computed == 4 and not on_postgres.errors
    assert (small_root / "report.html").is_file()

    sqlite_rows = _exported(capsys, str(small_root))
    postgres_rows = _exported(capsys, str(small_root), "--db", postgres_db)
    assert len(postgres_rows) == 4 and postgres_rows == sqlite_rows  # same scores, events, stats, bit for bit

    monkeypatch.setenv("EVALKIT_DB", postgres_db)
    assert _exported(capsys, str(small_root)) == postgres_rows
    again = run_root(small_root, detectors=["framediff"], workers=0, write_report=False)  # EVALKIT_DB: resumes
    assert again.computed == 0 and again.cached == 4
    (small_root / "report.html").unlink()
    assert main(["report", str(small_root)]) == 0 and (small_root / "report.html").is_file()
    capsys.readouterr()

    with_arrays = load_results(small_root, with_arrays=True)
    reference = load_results(small_root / "evalkit.db", with_arrays=True)
    for a, b in zip(with_arrays["series"], reference["series"]):
        np.testing.assert_array_equal(a, b)

    from evalkit.widgets import ReviewData, VideoReview

    monkeypatch.delenv("EVALKIT_DB")
    data = ReviewData(small_root, db=postgres_db)
    assert len(data.clips()) == 4
    widget = VideoReview(small_root, reviewer="ana", db=postgres_db)
    widget.label_key(1)
    with open_store(postgres_db) as store:
        labels = store.labels_frame()
    assert labels[["reviewer", "kind", "failure_mode"]].values.tolist() == [["ana", "clip", "framediff"]]
    with open_store(root=small_root) as store:  # the SQLite store saw none of it
        assert store.labels_frame().empty


def test_a_shared_store_gives_each_root_its_own_results(small_root, tmp_path, clips, postgres_db):
    from conftest import make_root

    other = make_root(tmp_path / "other", clips, {"ckpt_z": None})
    run_root(small_root, detectors=["framediff"], workers=0, db=postgres_db, write_report=False)
    run_root(other, detectors=["framediff"], workers=0, db=postgres_db, write_report=False)
    mine = load_results(small_root, db=postgres_db)
    theirs = load_results(other, db=postgres_db)
    assert len(mine) == 4 and len(theirs) == 2
    assert set(mine["checkpoint"]) == {"ckpt_a", "ckpt_b"} and set(theirs["checkpoint"]) == {"ckpt_z"}


def test_cli_names_an_unreachable_store(small_root, tmp_path, capsys):
    code = main(["results", str(small_root), "--db", f"postgresql://nobody@/x?host={tmp_path}&connect_timeout=2"])
    assert code == 2 and "cannot connect" in capsys.readouterr().err
