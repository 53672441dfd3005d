# medseg: `make demo` installs and runs the default job; `make test` runs the test suite.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PYTEST := $(PY) -m pytest
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-slow test-sweeps test-faults test-browser viewer-screenshots test-all bench lint clean

install: $(VENV)/.installed

# Exact versions come from requirements/constraints.txt (pip reads the torch wheels from the local
# disk where they are; see README "Install").
$(VENV)/.installed: pyproject.toml requirements/constraints.txt Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[dev,postgres,slurm,clinical,export,viewer]"
	touch $@

demo: install
	$(VENV)/bin/medseg-train

# pytest exits 5 when it collects nothing: not a failure of the suite itself.
define run_pytest
	$(PYTEST) $(1); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc
endef

test: install
	@$(call run_pytest,-m "not slow and not faults and not browser" -q)

test-slow: install
	@$(call run_pytest,-m "slow and not faults" -q)

# medseg-view and the HTML reports in a real browser: Debian's chromium (/usr/bin/chromium) driven by Playwright, headless
# (skips, saying why, where chromium is missing); about 2 minutes on 2 cores
test-browser: install
	@$(call run_pytest,-m "browser" -q tests)

# the screenshots of docs/viewer.md, made by the browser tests
viewer-screenshots: install
	MEDSEG_VIEWER_SCREENSHOTS=docs/img $(PYTEST) -m "browser" -q tests/apps/viewer

# the slower multi-process checks CI also runs: 2-process DDP vs 1 process, DDP sweep trials,
# a sweep killed mid-trial and resumed (about 2-3 minutes on 2 cores)
test-sweeps: install
	@$(call run_pytest,-m "slow" -q tests/ddp tests/hparams_search)

# the fault harness: 53 bad inputs through the CLIs, corrupt and hostile checkpoints, kill -9 and
# SIGTERM at several moments of train/kfold/sweep with exact-resume checks, a run without network;
# prints a table of cases at the end (about 10 minutes on 2 cores)
test-faults: install
	@$(call run_pytest,-m "faults" -q --durations=10 tests/faults)

# everything: the fast suite, the slow one and the fault harness
test-all: install
	@$(call run_pytest,-q)

# Clinical database tests against a throwaway PostgreSQL server on 127.0.0.1 (scripts/with_postgres.sh
# installs Debian's postgresql when missing; without a server the PostgreSQL tests skip, saying why).
.PHONY: test-postgres
test-postgres: install
	PY=$(PY) scripts/with_postgres.sh $(PY) -m pytest tests/apps/clinical -m "not slow" -q

bench: install
	$(PY) experiments/benchmarks/run_all.py

lint: install
	$(VENV)/bin/ruff check medseg tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy medseg

clean:
	rm -rf outputs multirun .pytest_cache
