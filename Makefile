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

run: install ## start naqd on the example config with an embedded NATS server (examples/ is not installed: naqd imports from the working directory)
	$(BIN)/naqd --config $(CONFIG)

# Three xdist workers, one more than the 2-core machine the suite is sized for: most tests
# wait on real servers and daemons, not on the CPU (3.5 min against 5 min with two);
# every test has its own ports and tmp dirs.
# --dist worksteal: an idle worker takes queued tests from the busy one, so the slow
# scheduling and fault tests do not pile up at the end of one worker.
PYTEST_WORKERS ?= 3

test: install ## the whole suite: unit, integration and inproc (real nats-server), process and faults (real naqd)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

# mypy --strict on the user-facing packages (naqd/testing once it exists).
TYPED := naqd/client naqd/dashboard naqd/middleware.py naqd/integrations $(wildcard naqd/testing) naqd/contrib

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict $(TYPED) examples/typed
	$(BIN)/python tests/typing/check_typing.py  # typed tasks: assert_type cases pass, wrong calls are rejected

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## throughput, latency, queue depth, delayed/cron scale, memory, pools, next to raw nats-py baselines (not part of test; ~10 min)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache
