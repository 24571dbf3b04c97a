# `make demo` and `make test` install what they need into .venv on a fresh machine, then run.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint wheel-check bench clean

$(STAMP): pyproject.toml setup.py constraints.txt scripts/install_dds.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,genesis,wandb]'
	bash scripts/install_dds.sh $(VENV)
	$(PY) -m asap.cli robot fetch
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/asap demo

test: lint wheel-check
	MUJOCO_GL=egl $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check asap envs deploy scripts tests setup.py runtime
	$(VENV)/bin/ruff format --check asap envs deploy scripts tests setup.py runtime
	# the robot runtime (runtime/files.txt) must run on Python 3.8 (the G1's onboard computer)
	$(VENV)/bin/vermin -q --no-tips --violations -t=3.8- runtime/setup.py scripts/bench_runtime.py $$(grep '\.py$$' runtime/files.txt)

# `pip install .` (not editable) into a throwaway venv, then `asap retarget builtin:squat` outside the checkout.
wheel-check: $(STAMP)
	bash scripts/check_wheel.sh $(VENV)

clean:
	rm -rf $(VENV) run .pytest_cache
