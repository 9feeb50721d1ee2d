"""Find detectors by name: built-ins, aliases, and plug-ins registered through the
``evalkit.detectors`` entry-point group (``name = "package.module:DetectorClass"``)."""

from __future__ import annotations

import difflib
import importlib
import logging
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
