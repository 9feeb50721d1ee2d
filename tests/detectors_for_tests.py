"""Small detectors used by the runner tests (importable by subprocesses via PYTHONPATH)."""

from __future__ import annotations

import os
import time
from typing import ClassVar

import numpy as np

from evalkit import BaseDetector, DetectorResult


class Constant(BaseDetector):
    name: ClassVar[str] = "constant"
    failure_mode: ClassVar[str] = "test"
    score_meaning: ClassVar[str] = "the configured value"
    default_config: ClassVar[dict] = {"value": 1.0}

    def score(self, inputs):
        n = inputs.video.num_frames
        return DetectorResult(score=float(self.config["value"]), flagged=False, series=np.full(n, self.config["value"], np.float32))


class Slow(Constant):
    """Sleeps $EVALKIT_TEST_SLEEP_S per video (for kill-and-resume and lock tests). The sleep is
    not a config option on purpose: a changed option would change the result key."""

    name: ClassVar[str] = "slow"

    def score(self, inputs):
        time.sleep(float(os.environ.get("EVALKIT_TEST_SLEEP_S", "0")))
        return super().score(inputs)
