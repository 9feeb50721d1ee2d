"""The detector contract.

A detector turns one video's inputs into a :class:`~evalkit.DetectorResult`. It declares what it
``requires`` (``"frames"``, ``"face"``, ``"pose"``, ``"prompt"``) so that the runner decodes each
video once and computes face and pose landmarks at most once per video, whatever the number of
detectors. Detectors that batch across videos override :meth:`BaseDetector.score_batch`.

Every detector also has a functional form (a plain function over tensors or arrays) so it can
run inside a training loop without the runner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from evalkit._types import DetectorResult, VideoInputs
from evalkit.errors import DetectorConfigError

REQUIREMENTS = frozenset({"frames", "face", "pose", "prompt"})


@runtime_checkable
class Detector(Protocol):
    """What the runner needs of a detector (built-in or from a plug-in)."""

    name: str
    failure_mode: str
    requires: frozenset[str]
    higher_is_worse: bool
    version: str
    score_meaning: str
    config: dict[str, Any]

    @property
    def config_hash(self) -> str: ...

    def score_batch(self, inputs: Sequence[VideoInputs]) -> list[DetectorResult]: ...


class BaseDetector:
    """Convenience base class implementing :class:`Detector`.

    Subclasses set the class attributes, list their options with defaults in
    ``default_config``, and implement :meth:`score` (or :meth:`score_batch`).
    """

    name: ClassVar[str]
    failure_mode: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset({"frames"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    score_meaning: ClassVar[str] = ""
    default_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, device: str | torch.device = "cpu", **config: Any) -> None:
        unknown = set(config) - set(self.default_config)
        if unknown:
            raise DetectorConfigError(
                f"{self.name}: unknown option(s) {sorted(unknown)}; expected some of {sorted(self.default_config)}"
            )
        bad = set(self.requires) - REQUIREMENTS
        if bad:
            raise DetectorConfigError(f"{self.name}: unknown requirement(s) {sorted(bad)}")
        self.config: dict[str, Any] = {**self.default_config, **config}
        self.device = torch.device(device)

    @property
    def config_hash(self) -> str:
        """Hash of the options that change results (not the device)."""
        blob = json.dumps(self.config, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this detector cannot run here (missing weights...), or None when it can."""
        return None

    def score(self, inputs: VideoInputs) -> DetectorResult:
        raise NotImplementedError

    def score_batch(self, inputs: Sequence[VideoInputs]) -> list[DetectorResult]:
        """Score several videos. The default scores them one at a time."""
        return [self.score(x) for x in inputs]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, config={self.config})"
