# Everything a fresh clone needs, installed by the targets themselves:
#   make demo   simulate, train, compare, write demo_out/report.md
#   make test   the everyday test suite (tests marked `slow` are left to `make test-slow`)
#   make docs   the Sphinx site in docs/_build/html, warnings as errors
# All create .venv and install what they need (the test, deepcr and docs extras: the everyday
# tests check the API reference with Sphinx).  torch is pinned to the CPU build that lies on
# this machine's disk (an unpinned torch pulls a CUDA build).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
# Debian packages the tests or docs need, in one place (fitsverify: the FITS products test).
# `make apt` installs the missing ones as root where apt-get exists, and says so elsewhere.
APT_PACKAGES ?= fitsverify

.PHONY: apt install test test-slow docs demo bench notebooks clean

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "make apt: cannot install$$missing (needs root and apt-get); tests that need them skip"; \
	fi

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,deepcr,docs]"
	touch $(STAMP)

install: apt $(STAMP)

test: apt $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# pytest exits 5 when it collects no test: no slow test is not a failure
test-slow: apt $(STAMP)
	$(PY) -m pytest -q -m slow; rc=$$?; if [ $$rc -eq 5 ]; then echo "no slow tests"; exit 0; fi; exit $$rc

docs: $(STAMP)
	$(PY) -m sphinx -E -W --keep-going -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

demo: $(STAMP)
	$(VENV)/bin/cosmiq demo --out demo_out

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

notebooks: $(STAMP)
	COSMIQ_NOTEBOOK_SCALE=full $(PY) notebooks/run_notebooks.py notebooks/*.ipynb

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo_out docs/_build docs/api docs/tutorials/*.ipynb
