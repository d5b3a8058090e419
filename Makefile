# Everything runs from a local .venv created on first use: a fresh machine needs only Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CONFIG ?= config/naq.yaml

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[daemon,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: install ## start naqd on the example config with an embedded NATS server (examples/ is not installed: found through PYTHONPATH)
	PYTHONPATH=$(CURDIR) $(BIN)/naqd --config $(CONFIG)

test: install ## the whole suite: unit, integration and inproc (real nats-server), process and faults (real naqd)
	$(BIN)/pytest

# mypy --strict on the user-facing packages (naqd/testing once it exists).
TYPED := naqd/client $(wildcard naqd/testing)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict $(TYPED)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## throughput, latency, queue depth, delayed/cron scale, memory, next to raw nats-py baselines (not part of test; ~7 min)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache
