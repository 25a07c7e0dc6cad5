# Two commands for a fresh machine: `make demo` runs the pipeline, `make test` proves it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-pins
# Airflow puts plugins/ on sys.path; our own commands need the same (and the repo root).
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)

.PHONY: demo demo-stop test lint browser backfill-test venv clean

venv: $(STAMP)

# Rebuild the virtualenv whenever a pin file or the package metadata changes. The project
# itself goes in editable (its entry points: the UI's SMSC connection type, `airflow smsc`,
# the timetable plugin); --no-deps, so only the pins decide what else is installed. The build
# leaves metadata in plugins/, which is on sys.path: Airflow would see the package twice and
# load its plugin twice (a plugin import error), so it goes.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -rf plugins/*.egg-info
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m devtools.demo

demo-stop: $(STAMP)
	$(BIN)/python -m devtools.demo --stop

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The SMSC page's browser test drives Debian's Chromium through Playwright, which cannot
# download a browser of its own here: installed once (apt, as root), then two lookups.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "make: installing Debian's chromium and chromium-driver (the browser test)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium chromium-driver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		{ echo "make: could not install chromium; install it (chromium, chromium-driver)" >&2; exit 1; }; \
	fi

# Two workers, each taking whole test modules (a module's Airflow stack stays in one
# process): most of the suite's time is stack tests waiting on rate windows and the
# scheduler, so two run side by side in about half the time on two cores.
test: lint browser
	$(BIN)/pytest -n 2 --dist loadfile

backfill-test: $(STAMP)
	$(BIN)/pytest -m backfill

clean:
	rm -rf $(VENV) .state .mypy_cache .pytest_cache .ruff_cache

# Backfill speed against SMSC's real limit, ours vs a naive DAG, CPU per loaded day
# before/after and N accounts at once (about 45 minutes): writes docs/benchmarks.md.
# Measures only; never fails on a missed target.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m devtools.benchmark

# 90-day backfill under random API faults at a scaled rate window (about 6 minutes);
# exits 1 if any day differs from the simulator's ground truth. Not part of `make test`.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m devtools.reliability.soak --days 90 --rate-window 2 --fault-rate 0.2 --seed 7
