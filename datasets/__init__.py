"""evalkit.datasets: footage, generators of injected defects and the evaluation harnesses that
measure the detectors. Nothing that ships a detector reads from here (a detector's data lies
beside its code in evalkit.detectors).

Imported as ``evalkit.datasets`` (pyproject maps this folder there). Run evalkit's commands
from anywhere but the repository root if HuggingFace ``datasets`` is installed beside it: from
the root, ``import datasets`` would find this folder first.
"""
