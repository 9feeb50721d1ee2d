"""Two reviewers (two processes, as two JupyterLab kernels would be) label into one store at the
same time: on both backends no label is lost, none is written twice, every id is unique."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from evalkit.store import open_store

LABELS_PER_REVIEWER = 1000

# What a kernel does when its reviewer labels: ReviewData.store.add_label, one committed row each.
_WRITER = """
import json, sys, time
from evalkit.store import open_store
db, reviewer, count, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = open_store(db)
while time.time() < start_at:
    time.sleep(0.001)
ids, times = [], []
for i in range(count):
    ids.append(store.add_label(video_hash=f"clip{i % 17}", reviewer=reviewer, kind="clip", failure_mode="confetti",
                               value="fail" if i % 2 else "pass", note=f"{reviewer} #{i}", payload={"seq": i}))
    times.append(time.time())
store.close()
print(json.dumps({"ids": ids, "first": times[0], "last": times[-1]}))
"""


def test_two_reviewers_write_1000_labels_each_at_once(store_db, reliability_counts):
    open_store(store_db).close()  # the schema exists before the race (as after `evalkit run`)
    start_at = time.time() + 8.0  # both interpreters are up and connected by then
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, store_db, reviewer, str(LABELS_PER_REVIEWER),
                               str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for reviewer in ("ana", "bo")]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    # the two really overlapped in time
    assert outputs[0]["first"] < outputs[1]["last"] and outputs[1]["first"] < outputs[0]["last"]

    with open_store(store_db) as store:
        labels = store.labels_frame()
    written = 2 * LABELS_PER_REVIEWER
    lost = written - len(labels)
    backend = "postgresql" if "://" in store_db else "sqlite"
    reliability_counts(f"[{backend}] concurrent reviewers: 2 processes x {LABELS_PER_REVIEWER} labels at once, "
                       f"{written} written, {len(labels)} stored, {lost} lost")
    assert lost == 0 and labels["id"].is_unique
    returned = sorted(outputs[0]["ids"] + outputs[1]["ids"])
    assert returned == sorted(labels["id"].tolist())  # every id a writer was given is a stored row
    for reviewer in ("ana", "bo"):
        mine = labels[labels["reviewer"] == reviewer]
        assert sorted(p["seq"] for p in mine["payload"]) == list(range(LABELS_PER_REVIEWER))
        assert set(mine["note"]) == {f"{reviewer} #{i}" for i in range(LABELS_PER_REVIEWER)}
