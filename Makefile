# sslm-ci: everything installs itself. `make demo` and `make test` are the only entry points
# a new machine needs (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sslm-ci-installed

.PHONY: demo test lint typecheck unit bench sysdeps citools clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# Debian packages the real-part tests drive. Installed only when we are root;
# otherwise the suite reports what is missing (and fails under CI=true).
sysdeps:
	@sh scripts/install-sysdeps.sh

# gitlab-ci-local (npm, project-local .ci-tools/) and rsync/shellcheck for the CI-template tests.
citools:
	@sh scripts/install-ci-tools.sh

demo: $(STAMP)
	$(BIN)/python -m sslm_ci.demo

lint: $(STAMP)
	$(BIN)/ruff check sslm_ci tests bench
	$(BIN)/ruff format --check sslm_ci tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: sysdeps citools $(STAMP) lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
