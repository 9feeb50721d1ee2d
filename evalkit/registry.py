"""Find detectors by name: built-ins, aliases, and plug-ins registered through the
``evalkit.detectors`` entry-point group (``name = "package.module:DetectorClass"``).

:func:`detector_facts` is the one place that reads what a detector says about itself (failure
mode, direction, units, threshold, checkpoint aggregate): reports, widgets, the CLI and
notebooks all ask it, and it answers neutrally for results whose detector is not installed.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from evalkit.errors import UnknownDetectorError

log = logging.getLogger(__name__)

# Lazy "module:attr" entries: importing evalkit loads no model code.
_BUILTIN: dict[str, str] = {
    "framediff": "evalkit.detectors.framediff:FrameDifferenceDetector",
    "confetti": "evalkit.detectors.confetti:ConfettiDetector",
    "temporal_flickering": "evalkit.detectors.temporal_flickering:TemporalFlickeringDetector",
    "blink": "evalkit.detectors.blink:BlinkDetector",
    "expression": "evalkit.detectors.expression:ExpressionDetector",
    "motion": "evalkit.detectors.motion:MotionDetector",
    "alignment": "evalkit.detectors.alignment:AlignmentDetector",
}
_ALIASES: dict[str, str] = {"dance": "motion"}
_EXTRA: dict[str, Any] = {}


def register(name: str, target: Any) -> None:
    """Register a detector class (or a ``"module:attr"`` string) under ``name`` at run time."""
    _EXTRA[name] = target
    _facts.cache_clear()


def aliases() -> dict[str, str]:
    """Alias -> detector name (``{"dance": "motion"}``)."""
    return dict(_ALIASES)


def _entries() -> dict[str, Any]:
    entries: dict[str, Any] = dict(_BUILTIN)
    for ep in entry_points(group="evalkit.detectors"):
        entries.setdefault(ep.name, ep.value)
    entries.update(_EXTRA)
    return entries


def _resolve(target: Any) -> type:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def available_detectors() -> list[str]:
    """Names of detectors whose code imports here (aliases excluded), sorted."""
    names = []
    for name, target in _entries().items():
        try:
            _resolve(target)
        except ImportError as exc:  # a built-in not shipped yet, or a broken plug-in
            log.debug("detector %s not importable: %s", name, exc)
            continue
        names.append(name)
    return sorted(names)


def canonical_name(name: str) -> str:
    """Resolve aliases (``dance`` -> ``motion``); raise with suggestions if unknown."""
    name = _ALIASES.get(name, name)
    entries = _entries()
    if name not in entries:
        known = list(entries) + list(_ALIASES)
        raise UnknownDetectorError(name, sorted(entries), difflib.get_close_matches(name, known, n=3, cutoff=0.6))
    return name


def detector_class(name: str) -> type:
    """The class registered under ``name`` (or an alias of it)."""
    return _resolve(_entries()[canonical_name(name)])


def get_detector(name: str, device: str = "cpu", **config: Any) -> Any:
    """Instantiate the detector registered under ``name``."""
    return detector_class(name)(device=device, **config)


@dataclass(frozen=True)
class DetectorFacts:
    """What a detector says about itself, for everything that reads its results.

    Attributes:
        name: registered name.
        available: False when no detector of that name imports here (results may outlive the
            code that made them); the other fields are then neutral defaults.
        failure_mode: the failure it measures, in words.
        requires: the inputs it needs (``"frames"``, ``"face"``, ``"pose"``, ``"prompt"``).
        higher_is_worse: direction of the score.
        score_meaning: what one score means.
        units: units of the score ("" when it has none).
        version: the detector's version ("" when unavailable).
        threshold: the default ``threshold`` option when it is a number, else None.
        checkpoint_aggregate: ``stats list -> dict`` pooling a checkpoint's clips, or None.
        describe_aggregate: ``aggregate row -> one line`` for the terminal summary, or None.
        paired_score: ``(stats, reference stats) -> float``, how much worse a clip is than the
            same prompt and seed at a reference checkpoint (> 0 worse), or None; regressions
            and :func:`evalkit.aggregate.paired_comparisons` use it for shared clips.
    """

    name: str
    available: bool
    failure_mode: str
    higher_is_worse: bool
    score_meaning: str
    requires: frozenset[str] = frozenset()
    units: str = ""
    version: str = ""
    threshold: float | None = None
    checkpoint_aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    describe_aggregate: Callable[[dict[str, Any]], str] | None = None
    paired_score: Callable[[dict[str, Any], dict[str, Any]], float] | None = None
    _reason: Callable[[], str | None] | None = None

    def unavailable_reason(self) -> str | None:
        """Why the detector cannot run here (missing weights...), or None when it can; asked
        afresh each time (weights may be installed while a kernel runs)."""
        if not self.available:
            return f"no detector named {self.name!r} is installed here"
        return self._reason() if self._reason is not None else None

    @property
    def direction(self) -> str:
        return "higher is worse" if self.higher_is_worse else "higher is better"


def detector_facts(name: str) -> DetectorFacts:
    """The :class:`DetectorFacts` of ``name`` (aliases allowed); neutral facts (higher is worse,
    no meaning) when no detector of that name imports here."""
    return _facts(_ALIASES.get(name, name))


@lru_cache(maxsize=None)  # entry points are scanned per look-up: report and widgets ask per clip
def _facts(name: str) -> DetectorFacts:
    try:
        cls = detector_class(name)
    except Exception as exc:  # unknown, or a plug-in not installed or broken here
        log.debug("detector %s not importable here: %s", name, exc)
        return DetectorFacts(name=name, available=False, failure_mode=name, higher_is_worse=True, score_meaning="")
    threshold = (getattr(cls, "default_config", None) or {}).get("threshold")
    return DetectorFacts(
        name=name,
        available=True,
        failure_mode=str(getattr(cls, "failure_mode", name)),
        higher_is_worse=bool(getattr(cls, "higher_is_worse", True)),
        score_meaning=str(getattr(cls, "score_meaning", "")),
        requires=frozenset(getattr(cls, "requires", ())),
        units=str(getattr(cls, "units", "")),
        version=str(getattr(cls, "version", "")),
        threshold=float(threshold) if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else None,
        checkpoint_aggregate=getattr(cls, "checkpoint_aggregate", None),
        describe_aggregate=getattr(cls, "describe_aggregate", None),
        paired_score=getattr(cls, "paired_score", None),
        _reason=getattr(cls, "unavailable_reason", None),
    )
