# Guardia — the two commands: `make up` and `make test`.
# Works on a machine with only Python >= 3.11 and make: uv is bootstrapped into .guardia/ if absent.

PYTHON ?= python3
BOOT   := .guardia/bootstrap
UV     := $(shell command -v uv 2>/dev/null || echo $(BOOT)/bin/uv)
VENV   := .venv
BIN    := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v $(PYTHON))

.PHONY: up test check bench install fmt clean

$(BOOT)/bin/uv:
	@echo "uv not found: bootstrapping it into $(BOOT)"
	@$(PYTHON) -m venv $(BOOT) && $(BOOT)/bin/python -m pip install --quiet --disable-pip-version-check uv \
	  || (rm -rf $(BOOT) && $(PYTHON) -m pip install --quiet --target $(BOOT)/pkgs uv \
	      && mkdir -p $(BOOT)/bin && ln -sf ../pkgs/bin/uv $(BOOT)/bin/uv)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.synced

up: install  ## run Guardia: embedded Postgres, migrations, API, worker, scheduler, simulators
	$(BIN)/guardia up

test: install  ## the whole test suite (starts every server it needs)
	$(BIN)/pytest

check: install  ## lint, format check, strict types
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

bench: install  ## benchmarks; results go in docs/benchmarks.md
	$(BIN)/python bench/run_all.py

fmt: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
