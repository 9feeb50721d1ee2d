"""The detector contract.

A detector turns one video's inputs into a :class:`~evalkit.DetectorResult`. It declares what it
``requires`` (``"frames"``, ``"face"``, ``"pose"``, ``"prompt"``) so that the runner decodes each
video once and computes face and pose landmarks at most once per video, whatever the number of
detectors. Detectors that batch across videos override :meth:`BaseDetector.score_batch`.

Every detector also has a functional form (a plain function over tensors or arrays) so it can
run inside a training loop without the runner.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from evalkit._lazy import lazy_import
from evalkit._types import DetectorResult, VideoInputs
from evalkit.errors import DetectorConfigError

if TYPE_CHECKING:
    import torch
else:  # torch loads on first use: `evalkit detectors` reads facts without it
    torch = lazy_import("torch")

REQUIREMENTS = frozenset({"frames", "face", "pose", "prompt"})

ConfigT = TypeVar("ConfigT")


def make_config(config_type: type[ConfigT], options: Mapping[str, Any] | None = None, owner: str = "") -> ConfigT:
    """Build a detector's typed options from keyword ``options``, validating every name.

    ``config_type`` is a dataclass whose fields (with their defaults) are the detector's only
    definition of its options; the functional forms and the class both build it here.

    Raises:
        DetectorConfigError: an option is not a field of ``config_type`` (with a did-you-mean).
    """
    options = dict(options or {})
    fields = [f.name for f in dataclasses.fields(config_type)]  # type: ignore[arg-type]
    unknown = [k for k in options if k not in fields]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, fields, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        who = f"{owner}: " if owner else ""
        raise DetectorConfigError(
            f"{who}unknown option {name!r}.{hint} Expected some of: {', '.join(sorted(fields))}"
        )
    return config_type(**options)


def detector_side(detector: Any, run_side: int | None) -> int | None:
    """The ``max_side`` whose frames ``detector`` gets in a run decoding at ``run_side``:
    its declared :attr:`BaseDetector.max_side`, or the run's (``"run"``, or a plug-in that
    declares nothing)."""
    side = getattr(detector, "max_side", "run")
    return run_side if side == "run" else side


def config_dict(config: Any) -> dict[str, Any]:
    """A typed config as the plain dict that keys results (``config_hash``) and is stored."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _config_type_from_dict(owner: str, defaults: Mapping[str, Any]) -> type:
    """A frozen dataclass for a detector that still declares ``default_config`` as a dict
    (plug-ins written before typed configs)."""
    fields = [(k, Any, dataclasses.field(default_factory=lambda v=v: copy.deepcopy(v))) for k, v in defaults.items()]
    return dataclasses.make_dataclass(f"{owner}Config", fields, frozen=True)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a detector that has none."""


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

    Subclasses set the class attributes, declare their options as a frozen dataclass in
    ``config_type`` (field defaults are the one definition of each default), and implement
    :meth:`score` (or :meth:`score_batch`). The instance holds them typed in ``options`` and
    as a dict in ``config`` (what keys its results). ``default_config`` is derived from
    ``config_type``; a plug-in may still set ``default_config`` (a dict) instead.
    """

    name: ClassVar[str]
    failure_mode: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset({"frames"})
    higher_is_worse: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    score_meaning: ClassVar[str] = ""
    units: ClassVar[str] = ""
    config_type: ClassVar[type] = NoOptions
    default_config: ClassVar[dict[str, Any]] = {}
    # The longer side, in pixels, of the frames this detector needs: "run" takes the run's
    # DecodeOptions.max_side (--max-side, 512 by default); an int caps it there (a smaller
    # video keeps its size); None takes the delivered size. The runner decodes each video once
    # and scales each frame to every size its pending detectors declared.
    max_side: ClassVar[int | None | str] = "run"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_type" in cls.__dict__:
            cls.default_config = config_dict(cls.config_type())
        elif "default_config" in cls.__dict__:
            cls.config_type = _config_type_from_dict(cls.__name__, cls.default_config)

    def __init__(self, device: str | torch.device = "cpu", **config: Any) -> None:
        bad = set(self.requires) - REQUIREMENTS
        if bad:
            raise DetectorConfigError(f"{self.name}: unknown requirement(s) {sorted(bad)}")
        self.options = make_config(self.config_type, config, self.name)
        self.config: dict[str, Any] = config_dict(self.options)
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
