"""Typed options for the functional forms of the built-in detectors.

Each detector declares its options once, as a frozen dataclass (``ConfettiConfig`` ...) that its
class names in ``config_type``. A functional form takes that config and, for convenience, keyword
overrides of it: ``confetti_maps(frames, fps, work_short_side=64)``. :func:`with_options` builds
the one from the other and rejects a misspelt option with a did-you-mean, as the class does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from evalkit.detector import make_config
from evalkit.errors import DetectorConfigError

ConfigT = TypeVar("ConfigT")


def with_options(config_type: type[ConfigT], config: ConfigT | None, options: Mapping[str, Any], owner: str) -> ConfigT:
    """``config`` (None: the defaults of ``config_type``) with the keyword ``options`` replaced.

    Raises:
        DetectorConfigError: ``config`` is not a ``config_type``, or an option is not one of its
            fields (the message names the closest fields).
    """
    if config is None:
        return make_config(config_type, options, owner)
    if not isinstance(config, config_type):
        raise DetectorConfigError(f"{owner}: config: expected {config_type.__name__}, got {type(config).__name__}")
    if not options:
        return config
    make_config(config_type, options, owner)  # validates the names
    return dataclasses.replace(config, **options)
