from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

import evalkit
from evalkit import BaseDetector, DetectorConfigError, DetectorResult, UnknownDetectorError
from evalkit.detector import Detector
from evalkit.registry import _BUILTIN, available_detectors, canonical_name, detector_class, get_detector, register


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownDetectorError) as info:
        canonical_name("confeti")
    message = str(info.value)
    assert "Did you mean 'confetti'" in message and "Available:" in message and "framediff" in message


def test_alias_resolves():
    assert canonical_name("dance") == "motion"


def test_builtins_satisfy_the_protocol():
    names = available_detectors()
    assert "framediff" in names
    for name in names:
        cls = detector_class(name)
        for attr in ("name", "failure_mode", "requires", "higher_is_worse", "version", "score_meaning"):
            assert hasattr(cls, attr), (name, attr)
        assert cls.name == name
        assert set(cls.requires) <= {"frames", "face", "pose", "prompt"}
    assert isinstance(get_detector("framediff"), Detector)


def test_unknown_option_is_a_clear_error():
    with pytest.raises(DetectorConfigError, match="jump_factr"):
        get_detector("framediff", jump_factr=3)


def test_config_hash_changes_with_options_only():
    a, b = get_detector("framediff"), get_detector("framediff", device="cpu")
    c = get_detector("framediff", jump_factor=5.0)
    assert a.config_hash == b.config_hash != c.config_hash


class _Constant(BaseDetector):
    name: ClassVar[str] = "constant_test"
    failure_mode: ClassVar[str] = "test"
    score_meaning: ClassVar[str] = "always 1"

    def score(self, inputs):
        return DetectorResult(score=1.0, flagged=False, series=np.ones(inputs.video.num_frames, np.float32))


def test_runtime_registration_and_entry_points(monkeypatch, clips):
    register("constant_test", _Constant)
    try:
        assert "constant_test" in available_detectors()
        df = evalkit.score(clips["carphone_pristine.mp4"], detectors=["constant_test"])
        assert df.loc[0, "score"] == 1.0 and len(df.loc[0, "series"]) == 120
    finally:
        from evalkit import registry

        registry._EXTRA.pop("constant_test")

    class EP:
        name, value = "plugin_test", "tests_plugin_mod:Plugin"

    monkeypatch.setattr("evalkit.registry.entry_points", lambda group: [EP()] if group == "evalkit.detectors" else [])
    assert canonical_name("plugin_test") == "plugin_test"
    assert "plugin_test" not in available_detectors()  # its module does not import: left out, not a crash
    assert set(_BUILTIN) >= {"confetti", "blink", "expression", "motion", "alignment", "framediff"}
