"""Review widgets for JupyterLab: play clips frame by frame with their detector scores, label
failures, compare checkpoints (side by side or blinded A/B) and calibrate detectors against
the labels. Labels go to the checkpoint root's results store as they are made.

Display a widget by leaving it as the last expression of a cell; constructors never display.
"""

from evalkit.widgets._data import Clip, ReviewData, browser_copy
from evalkit.widgets._scoring import ab_win_rates, calibration_table, detector_info, human_verdicts, queue_priority
from evalkit.widgets.calibration import Calibration
from evalkit.widgets.compare import BlindedAB, SideBySide
from evalkit.widgets.review import ReviewQueue, VideoReview

__all__ = sorted([
    "BlindedAB",
    "Calibration",
    "Clip",
    "ReviewData",
    "ReviewQueue",
    "SideBySide",
    "VideoReview",
    "ab_win_rates",
    "browser_copy",
    "calibration_table",
    "detector_info",
    "human_verdicts",
    "queue_priority",
])
