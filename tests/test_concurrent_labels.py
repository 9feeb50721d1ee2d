"""Two reviewers (two processes, as two JupyterLab kernels would be) label into one store at the
same time through the review widget: on both backends no label is lost, none is written twice,
every id is unique."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from evalkit.batch import run_root
from evalkit.datasets.bad_inputs import encode, moving_pattern
from evalkit.store import open_store

LABELS_PER_REVIEWER = 1000

# What a kernel does: a VideoReview on the root, its reviewer writing one note after another
# (each one committed at once and read back into the widget, as when typed in the page).
_KERNEL = """
import json, sys, time
from pathlib import Path
from evalkit.widgets import VideoReview
root, db, reviewer, count, gate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
widget = VideoReview(root, reviewer=reviewer, db=db)
(gate / reviewer).touch()  # ready; start when the test opens the gate
while not (gate / "go").exists():
    time.sleep(0.001)
ids, times = [], []
for i in range(count):
    ids.append(widget.save_note(f"{reviewer} #{i} <script>x</script>")["id"])
    times.append(time.time())
print(json.dumps({"ids": ids, "first": times[0], "last": times[-1], "shown": len(widget.labels)}))
"""


def test_two_reviewers_write_1000_labels_each_at_once(store_db, tmp_path, reliability_counts):
    root = tmp_path / "root"
    encode(root / "ckpt_a" / "clip.mp4", moving_pattern(8))
    run_root(root, detectors=["framediff"], workers=0, db=store_db, write_report=False)
    gate = tmp_path / "gate"
    gate.mkdir()
    kernels = [subprocess.Popen([sys.executable, "-c", _KERNEL, str(root), store_db, reviewer, str(LABELS_PER_REVIEWER),
                                 str(gate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for reviewer in ("ana", "bo")]
    outputs = []
    try:
        deadline = time.monotonic() + 300
        while not all((gate / r).exists() for r in ("ana", "bo")):  # both kernels up, widget open
            if time.monotonic() > deadline or any(k.poll() is not None for k in kernels):
                raise AssertionError("a kernel did not start: " + "".join(k.stderr.read() for k in kernels
                                                                          if k.poll() is not None)[-3000:])
            time.sleep(0.05)
        opened = time.time()
        (gate / "go").touch()
        for kernel in kernels:
            out, err = kernel.communicate(timeout=600)
            assert kernel.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for kernel in kernels:
            if kernel.poll() is None:
                kernel.kill()
                kernel.wait()
    assert all(o["first"] >= opened for o in outputs)
    assert outputs[0]["first"] < outputs[1]["last"] and outputs[1]["first"] < outputs[0]["last"]  # they overlapped
    assert [o["shown"] for o in outputs] == [LABELS_PER_REVIEWER] * 2  # each widget sees all of its own

    with open_store(store_db) as store:
        labels = store.labels_frame()
    written = 2 * LABELS_PER_REVIEWER
    lost = written - len(labels)
    backend = "postgresql" if "://" in store_db else "sqlite"
    reliability_counts(f"[{backend}] concurrent reviewers: 2 kernels x {LABELS_PER_REVIEWER} labels at once, "
                       f"{written} written, {len(labels)} stored, {lost} lost")
    assert lost == 0 and labels["id"].is_unique
    returned = sorted(outputs[0]["ids"] + outputs[1]["ids"])
    assert returned == sorted(labels["id"].tolist())  # every id a writer was given is a stored row
    for reviewer in ("ana", "bo"):
        mine = labels[labels["reviewer"] == reviewer]
        assert sorted(mine["note"]) == sorted(f"{reviewer} #{i} <script>x</script>" for i in range(LABELS_PER_REVIEWER))
        assert set(mine["kind"]) == {"note"} and set(mine["payload"].map(lambda p: p["widget"])) == {"VideoReview"}
