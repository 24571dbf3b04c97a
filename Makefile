# `make demo` and `make test` install what they need into .venv on a fresh machine, then run.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt scripts/install_dds.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,genesis,wandb]'
	bash scripts/install_dds.sh $(VENV)
	$(PY) -m asap.cli robot fetch
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/asap demo

test: $(STAMP)
	$(VENV)/bin/ruff check asap envs deploy scripts tests
	$(VENV)/bin/ruff format --check asap envs deploy scripts tests
	MUJOCO_GL=egl $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check asap envs deploy scripts tests
	$(VENV)/bin/ruff format --check asap envs deploy scripts tests

clean:
	rm -rf $(VENV) run .pytest_cache
