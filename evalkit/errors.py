"""Exceptions raised by evalkit.

Hierarchy::

    EvalkitError
    ├── VideoDecodeError        a video file cannot be opened or decoded (names the file)
    ├── LayoutError             a checkpoint root, prompts.jsonl or checkpoint.json is malformed
    ├── RootBusyError           another ``evalkit run`` holds the root's lock
    ├── UnknownDetectorError    a detector name is not registered (suggests close names)
    ├── DetectorConfigError     a detector got an unknown or invalid option
    ├── ShapeError              a tensor has the wrong shape (carries actual and expected)
    ├── StoreError              a results store cannot be opened (newer schema, no driver, no server)
    └── ModelWeightsMissingError  local weights a detector needs are not where it looks
"""

from __future__ import annotations

from collections.abc import Sequence


class EvalkitError(Exception):
    """Base class of every error evalkit raises on purpose."""


class VideoDecodeError(EvalkitError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class LayoutError(EvalkitError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class RootBusyError(EvalkitError):
    """Another ``evalkit run`` holds the root's lock (``ROOT/.evalkit.lock``)."""


class UnknownDetectorError(EvalkitError, KeyError):
    def __init__(self, name: str, available: Sequence[str], suggestions: Sequence[str]) -> None:
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        msg = f"Unknown detector {name!r}.{hint} Available: {', '.join(sorted(available))}"
        super().__init__(msg)
        self.name = name
        self.available = list(available)
        self.suggestions = list(suggestions)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DetectorConfigError(EvalkitError, ValueError):
    pass


class StoreError(EvalkitError):
    def __init__(self, store: str, problem: str) -> None:
        super().__init__(f"{store}: {problem}")
        self.store = store
        self.problem = problem


class ShapeError(EvalkitError, ValueError):
    def __init__(self, what: str, expected: str, actual: tuple[int, ...]) -> None:
        super().__init__(f"{what}: expected shape {expected}, got {tuple(actual)}")
        self.expected = expected
        self.actual = tuple(actual)


class ModelWeightsMissingError(EvalkitError, FileNotFoundError):
    pass
