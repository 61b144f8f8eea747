# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need.  torch is pinned to the CPU
# build that lies on this machine's disk (an unpinned torch pulls a CUDA build).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0

.PHONY: install test demo bench notebooks clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,deepcr]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/cosmiq demo --out demo_out

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

notebooks: $(STAMP)
	COSMIQ_NOTEBOOK_SCALE=full $(PY) notebooks/run_notebooks.py notebooks/*.ipynb

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo_out
