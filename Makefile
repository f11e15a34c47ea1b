# Kube Sentinel: every target a newcomer or CI needs. `make demo` and `make test` bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/config.yaml
RULES ?= config/rules.yaml

.PHONY: venv demo run test test-e2e bench lint fmt check sync-config docker deploy clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/kube-sentinel demo

run: $(STAMP)
	$(BIN)/kube-sentinel run --config $(CONFIG) --rules $(RULES) --store data/sentinel.json --listen 127.0.0.1:8080

check: $(STAMP)
	$(BIN)/kube-sentinel check --config $(CONFIG) --rules $(RULES)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m e2e tests/e2e

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run --out bench-report

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check sentinel tests app.py pages deploy
	$(BIN)/python deploy/sync_config.py --check
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format sentinel tests app.py pages deploy
	$(BIN)/ruff check --fix .

# config/*.yaml are the source; deploy/ holds copies kustomize and Helm can read.
sync-config: $(STAMP)
	$(BIN)/python deploy/sync_config.py

docker:
	docker build -f deploy/Dockerfile -t kube-sentinel:latest .

deploy:
	kubectl apply -k deploy/kubernetes/

clean:
	rm -rf $(VENV) build dist *.egg-info bench-report.md bench-report.json
