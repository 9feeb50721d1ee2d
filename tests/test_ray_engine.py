"""The Ray engine on a real local Ray cluster (2 CPUs, as in CI): the same rows as the local
engine in the same store, the same resume, a worker killed mid-run, progress, pool sizing.

Every test here runs under a hard deadline: a pipeline that hangs fails in minutes instead of
holding CI for its whole budget.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.batch import run_root
from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.video import DecodeOptions

TESTS = Path(__file__).resolve().parent
DEADLINE_S = 240  # per test; a healthy one takes seconds
FAST = DecodeOptions(max_side=128, max_frames=40)  # small clips keep CI's extra time small
FAST_ARGS = ["--max-side", "128", "--max-frames", "40"]

pytestmark = pytest.mark.ray


def _ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Ray is not installed (pip install -e '.[ray]')", pytrace=False)
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    return ray


@pytest.fixture(autouse=True)
def deadline():
    """Fail a test that runs past DEADLINE_S; end the whole process if even that is stuck."""

    def expire(signum, frame):
        raise TimeoutError(f"Ray test still running after {DEADLINE_S} s: the pipeline hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE_S)
    faulthandler.dump_traceback_later(DEADLINE_S + 60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local cluster sized like a small CI machine; test detectors importable by its workers."""
    ray = _ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env = {"PYTHONPATH": str(TESTS), "EVALKIT_TEST_SLEEP_S": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    for attempt in (1, 2):  # a raylet gets 30 s to register: a busy machine can miss that once
        try:
            ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, logging_level=logging.WARNING)
            break
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
            ray.shutdown()
    yield ray
    ray.shutdown()


@pytest.fixture
def test_detectors():
    from detectors_for_tests import Constant, Slow
    from evalkit.registry import _EXTRA, register

    register("constant", Constant)
    register("slow", Slow)
    yield
    _EXTRA.pop("constant"), _EXTRA.pop("slow")


def _stored(db: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(results with arrays, items, errors) of a store, without the write times."""
    from evalkit.store import open_store

    with open_store(db, create=False) as store:
        results = store.results_frame(with_arrays=True).drop(columns=["created"])
        items = store.items_frame().drop(columns=["updated"]).sort_values("path").reset_index(drop=True)
        errors = store.errors_frame()[["path", "detector", "message"]].sort_values(["path", "detector"]).reset_index(drop=True)
    return results, items, errors


def test_same_rows_as_the_local_engine(ray_cluster, test_detectors, small_root, tmp_path):
    (small_root / "ckpt_a" / "broken.mp4").write_bytes(b"not a video")  # an error row on both engines
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    local = run_root(small_root, detectors=["framediff", "constant"], decode=FAST, db=local_db, workers=0, write_report=False)
    argv = ["run", str(small_root), "--engine", "ray", "--db", str(ray_db), "--detectors", "framediff,constant", "--no-report"]
    assert main(argv + FAST_ARGS) == local.exit_code == 1  # the broken file

    (results_l, items_l, errors_l), (results_r, items_r, errors_r) = _stored(local_db), _stored(ray_db)
    assert len(results_l) == 8 and len(errors_l) == 2
    pd.testing.assert_frame_equal(results_l.drop(columns=["series", "maps"]), results_r.drop(columns=["series", "maps"]))
    for a, b in zip(results_l["series"], results_r["series"]):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(items_l, items_r)
    pd.testing.assert_frame_equal(errors_l, errors_r)


def test_resume_across_engines(ray_cluster, test_detectors, small_root):
    from evalkit._ray_engine import RayEngine

    first = run_root(small_root, detectors=["framediff"], decode=FAST, workers=0, write_report=False)
    assert first.computed == 4
    # A Ray run on the same store does only what the local run left: the new detector.
    second = run_root(small_root, detectors=["framediff", "constant"], decode=FAST, engine="ray", write_report=False)
    assert (second.computed, second.cached, second.errors) == (4, 4, [])
    # Nothing left: no pool is even started.
    engine = RayEngine()
    third = run_root(small_root, detectors=["framediff", "constant"], decode=FAST, engine=engine, write_report=False)
    assert (third.computed, third.cached) == (0, 8) and engine.plan is None and engine.decoders == []


def test_killed_model_worker_its_work_is_redone_and_every_row_written_once(ray_cluster, test_detectors, small_root, monkeypatch):
    from detectors_for_tests import Slow
    from evalkit._ray_engine import RayEngine
    from evalkit.layout import scan_root
    from evalkit.runner import Runner
    from evalkit.store import SQLStore, open_store

    writes: list[tuple] = []
    real_put = SQLStore.put_result
    monkeypatch.setattr(SQLStore, "put_result", lambda self, key, result: writes.append(key) or real_put(self, key, result))

    engine = RayEngine(decode_workers=1, model_workers=1)
    killed: list[int] = []

    def kill_model_worker() -> None:
        # Slow sleeps 1 s per video, one video per batch: the pid is answered between the first
        # and second batch, so the kill lands while the actor scores the second.
        while not engine.scorers:
            time.sleep(0.05)
        pid = ray_cluster.get(engine.scorers[0].pid.remote())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    items = scan_root(small_root).items
    killer = threading.Thread(target=kill_model_worker, daemon=True)
    killer.start()
    with open_store(None, root=small_root) as store, Runner([Slow()], decode=FAST, batch_size=1, engine=engine) as runner:
        outcomes = list(runner.run(items, store))
        killer.join(timeout=30)
        assert killed and engine.handed_out_again >= 1  # the kill hit work in progress
        assert [o.error for o in outcomes] == [None] * 4 and len(outcomes) == 4
        assert len(writes) == len(set(writes)) == 4  # each key written exactly once
        results = store.results_frame()
        assert len(results) == 4 and results["score"].eq(1.0).all()
        assert store.errors_frame().empty


def test_killed_decode_worker_its_video_is_decoded_again(ray_cluster, small_root, monkeypatch):
    from evalkit._ray_engine import RayEngine
    from evalkit.layout import scan_root
    from evalkit.runner import Runner, resolve_detectors
    from evalkit.store import SQLStore, open_store

    engine = RayEngine(decode_workers=1, model_workers=1)
    decoded = threading.Event()
    real_put_item = SQLStore.put_item
    monkeypatch.setattr(SQLStore, "put_item", lambda self, item: decoded.set() or real_put_item(self, item))
    items = scan_root(small_root).items
    full = DecodeOptions(max_side=256)  # whole clips: the decoder is still busy with the next one

    with open_store(None, root=small_root) as store, Runner(resolve_detectors(["framediff"]), decode=full,
                                                            batch_size=1, engine=engine) as runner:
        engine.start(runner)
        pid = ray_cluster.get(engine.decoders[0].pid.remote())

        def kill_decoder() -> None:  # once the first video is decoded, with the next in its hands
            decoded.wait(timeout=120)
            os.kill(pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_decoder, daemon=True)
        killer.start()
        outcomes = list(runner.run(items, store))
        killer.join(timeout=30)
        assert engine.handed_out_again >= 1
        assert [o.error for o in outcomes] == [None] * 4
        assert len(store.results_frame()) == 4 and store.errors_frame().empty


def test_progress_counts_clips_on_both_engines(ray_cluster, clips, capsys):
    import evalkit

    paths = [clips["carphone_pristine.mp4"], clips["bikes.mp4"]]
    for engine in ("local", "ray"):
        df = evalkit.score(paths, detectors="framediff", decode=FAST, engine=engine, progress=True)
        assert len(df) == 2 and df["error"].isna().all()
        err = capsys.readouterr().err
        assert "2/2" in err and "clip/s" in err, err


def test_pool_sizing_leaves_ray_room_to_schedule():
    _ray()
    from evalkit._ray_engine import plan_pools

    for cpus in (1, 2, 4, 16):
        plan = plan_pools({"CPU": cpus})
        claimed = plan.decode_workers * plan.decode_cpus + plan.model_workers * plan.model_cpus
        # a whole CPU left for other tasks (a 1-CPU cluster: the smallest claims Ray takes)
        assert claimed <= (cpus - 1 + 1e-9 if cpus > 1 else 0.02 + 1e-9), plan
        assert cpus > 2 or (plan.decode_cpus < 1 and plan.model_cpus < 1), plan  # no whole-CPU actor on a small machine
        assert plan.model_gpus == 0 and plan.decode_workers >= 1 and plan.model_workers >= 1
    gpu = plan_pools({"CPU": 16, "GPU": 1})
    assert gpu.model_workers == 2 and gpu.model_gpus == 0.5 and gpu.decode_workers == 16
    assert gpu.decode_workers * gpu.decode_cpus + gpu.model_workers * gpu.model_cpus <= 15
    with pytest.raises(EvalkitError, match="expected a fraction"):
        plan_pools({"CPU": 2, "GPU": 1}, gpu_per_model_worker=2)


def test_a_one_cpu_task_still_runs_beside_the_pools(ray_cluster):
    """What hangs a pipeline on a small machine: actors holding every CPU slot, so a default
    (one-CPU) task, such as Ray Data's reads, is never placed. Here it runs at once."""
    from evalkit._ray_engine import RayEngine
    from evalkit.runner import Runner, resolve_detectors

    engine = RayEngine()
    with Runner(resolve_detectors(["framediff"]), engine=engine) as runner:
        engine.start(runner)
        ray_cluster.get([a.pid.remote() for a in engine.decoders + engine.scorers], timeout=120)  # all placed
        one_cpu_task = ray_cluster.remote(num_cpus=1)(lambda: "ran")
        assert ray_cluster.get(one_cpu_task.remote(), timeout=60) == "ran"


def test_engine_names_and_the_optional_extra(monkeypatch):
    from evalkit.runner import make_engine

    with pytest.raises(EvalkitError, match="expected one of 'local', 'ray', got 'rya'"):
        make_engine("rya")
    with pytest.raises(EvalkitError, match="only the 'ray' engine"):
        make_engine("local", address="auto")
    monkeypatch.delitem(sys.modules, "evalkit._ray_engine", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(EvalkitError, match=r"pip install -e '\.\[ray\]'"):
        make_engine("ray")


def test_local_engine_never_imports_ray(small_root):
    code = ("import sys\nfrom evalkit.batch import run_root\n"
            f"run_root({str(small_root)!r}, detectors=['framediff'], workers=0, write_report=False, "
            "decode=__import__('evalkit').DecodeOptions(max_side=64, max_frames=8))\nprint('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
