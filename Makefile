# Two commands a new developer needs: `make demo` and `make test`. Everything they need is
# installed here, into .venv, from requirements*.txt: nothing is expected on the machine but
# Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := data/demo
# The demo runs the job on both cores; tests keep to one process per pipeline.
DEMO_RUNNER := --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

.PHONY: install demo test test-fast lint format bench model-report clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# librosa compiles numba code on its first call (~20 s); do it once here, not in every job.
	$(PY) -c 'import numpy as np, librosa; librosa.stft(np.zeros(4000, np.float32), n_fft=512)'
	touch $(STAMP)

demo: install
	$(PY) -m models.corpus --out $(DEMO)/training_corpus --count 320 --seed 1
	$(PY) -m models.corpus --out $(DEMO)/uploads --count 80 --seed 2 --corrupt 3
	@if ! $(PY) -m models.registry check $(DEMO)/models > /dev/null 2>&1; then \
	  echo "== extracting training features"; \
	  $(PY) -m pipelines.batch --input $(DEMO)/training_corpus/manifest.jsonl \
	    --warehouse $(DEMO)/training_warehouse --write_disposition truncate $(DEMO_RUNNER) > /dev/null && \
	  echo "== training demo models" && \
	  $(PY) -m models.train --features $(DEMO)/training_warehouse --labels $(DEMO)/training_corpus/labels.jsonl \
	    --out $(DEMO)/models --quiet; \
	else echo "== demo models in $(DEMO)/models are current (delete the directory to retrain)"; fi
	@echo "== scoring uploads"
	$(PY) -m pipelines.batch --input $(DEMO)/uploads/manifest.jsonl --warehouse $(DEMO)/warehouse \
	  --model_dir $(DEMO)/models --write_disposition truncate --min_cell_count 3 $(DEMO_RUNNER)
	@echo "== uploaders appeal half the restrictive decisions; real items are overturned"
	$(PY) -m pipelines.sample_appeals --warehouse $(DEMO)/warehouse --labels $(DEMO)/uploads/labels.jsonl \
	  --out $(DEMO)/appeals.jsonl --seed 3
	$(PY) -m pipelines.batch --appeals $(DEMO)/appeals.jsonl --warehouse $(DEMO)/warehouse --min_cell_count 3
	@echo "== the published transparency figures, over every run, each decision and appeal once"
	$(PY) -m pipelines.transparency --warehouse $(DEMO)/warehouse --min_cell_count 3
	$(PY) -m pipelines.report --warehouse $(DEMO)/warehouse --out $(DEMO)/transparency

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m benchmarks.throughput

# The measured model figures in reports/MODEL_REPORT.md: a 12000-item corpus, its features,
# training, and the evaluation with held-out families (about 5 hours on 2 cores).
REPORT := data/model-report
model-report: install
	$(PY) -m models.corpus --out $(REPORT)/corpus --count 12000 --seed 5
	$(PY) -m pipelines.batch --input $(REPORT)/corpus/manifest.jsonl --warehouse $(REPORT)/warehouse \
	  --write_disposition truncate $(DEMO_RUNNER) > /dev/null
	$(PY) -m models.train --features $(REPORT)/warehouse --labels $(REPORT)/corpus/labels.jsonl --out $(REPORT)/models
	$(PY) -m models.evaluate --features $(REPORT)/warehouse --labels $(REPORT)/corpus/labels.jsonl \
	  --model_dir $(REPORT)/models --out $(REPORT)/evaluation --leave_one_family_out --lofo_epochs 20

clean:
	rm -rf $(DEMO) .pytest_cache
