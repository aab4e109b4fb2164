# healthscore — the README's two commands: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONHASHSEED := 0

.PHONY: setup setup-spark demo test test-all test-spark bench lint lock clean

setup: $(STAMP)

# Re-runs only when the lock file or the package metadata changed; otherwise instant.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(BIN)/healthscore demo --out outputs

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ""

# Spark lives in its own environment: PySpark 4 warns on pandas >= 3, so this one pins pandas 2.3.
SPARK_VENV := .venv-spark
SPARK_BIN := $(SPARK_VENV)/bin
SPARK_STAMP := $(SPARK_VENV)/.installed

setup-spark: $(SPARK_STAMP)

$(SPARK_STAMP): requirements-spark.lock pyproject.toml
	test -x $(SPARK_BIN)/python || $(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-spark.lock
	$(SPARK_BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(SPARK_STAMP)

test-spark: setup-spark
	PYSPARK_PYTHON=$(abspath $(SPARK_BIN)/python) SPARK_LOCAL_IP=127.0.0.1 $(SPARK_BIN)/python -m pytest -q -m spark

# The commands as whole processes next to their floors (issue 18), then the library-level breakdown (issue 9).
bench: setup
	$(BIN)/python benchmarks/cli.py --doc docs/performance.md
	$(BIN)/python benchmarks/run_all.py
	$(BIN)/python benchmarks/model_quality.py
	$(BIN)/python benchmarks/site.py

lint: setup
	$(BIN)/ruff check src tests benchmarks

lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf outputs mlruns mlflow.db mlartifacts
