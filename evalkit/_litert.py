"""LiteRT (``ai-edge-litert``) engine for :mod:`evalkit._landmark_pipeline`.

LiteRT's interpreter has none of MediaPipe's custom ops, so it runs the classic models only
(``face_landmark`` with ``iris_landmark``, not ``face_landmark_with_attention``). One thread per
interpreter: the landmark pool already runs one worker process per core.
"""

from __future__ import annotations

import numpy as np

from evalkit._landmark_pipeline import ModelCall, model_bytes


class LiteRTModel:
    """One ``.tflite`` model: ``(N, H, W, 3)`` float32 -> outputs in the file's order, each with
    a leading ``N`` (the interpreter runs one image at a time)."""

    def __init__(self, name: str, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.name = name
        self.interpreter = Interpreter(model_content=model_bytes(name), num_threads=threads)
        self.interpreter.allocate_tensors()
        (inp,) = self.interpreter.get_input_details()
        self.input_index = int(inp["index"])
        self.input_shape = tuple(int(d) for d in inp["shape"][1:])
        self.output_indices = [int(d["index"]) for d in self.interpreter.get_output_details()]

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.name}: expected input (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(batch.shape)}")
        batch = np.asarray(batch, np.float32)
        if len(batch) == 1:  # the usual case while tracking: no stacking
            self.interpreter.set_tensor(self.input_index, batch)
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(index).copy() for index in self.output_indices]
        outs: list[list[np.ndarray]] = [[] for _ in self.output_indices]
        for image in batch:
            self.interpreter.set_tensor(self.input_index, image[None])
            self.interpreter.invoke()
            for k, index in enumerate(self.output_indices):
                outs[k].append(self.interpreter.get_tensor(index)[0].copy())
        return [np.stack(o) for o in outs]


class LiteRTEngine:
    """Loads models by name with ``threads`` interpreter threads each, once per engine (a
    worker process keeps one engine for all its videos; the trackers hold the per-video state,
    the interpreters none)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._models: dict[str, LiteRTModel] = {}

    def __call__(self, name: str) -> ModelCall:
        if name not in self._models:
            self._models[name] = LiteRTModel(name, self.threads)
        return self._models[name]
