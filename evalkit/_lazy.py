"""Modules imported on first use, so that commands which only read detector facts (``evalkit
detectors``, ``evalkit --help``) start without loading torch.

``torch = lazy_import("torch")`` binds a stand-in module; the first attribute read imports the
real one and copies its namespace into the stand-in, so later reads cost what a plain module
attribute costs. Code that must not wait (a default argument, a module-level tensor) should
build its value inside a function instead.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class _LazyModule(types.ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def _load(self) -> types.ModuleType:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        self.__dict__.update({k: v for k, v in module.__dict__.items() if k not in ("__name__", "__spec__", "__loader__")})
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_target']!r}>"


def lazy_import(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first attribute access."""
    return _LazyModule(name)
