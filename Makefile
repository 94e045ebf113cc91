PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: venv venv-dev test lint demo bench clean browser

venv: $(STAMP)
venv-dev: $(DEV_STAMP)

# the package and what it needs at run time
$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# test tools; PyTorch (CPU) only lets the torch.save round-trip tests of the checkpoint
# converter run: nothing in the package needs it
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet torch==2.13.0 || echo "PyTorch not installed: tests marked 'torch' will be skipped"
	touch $(DEV_STAMP)

# the page test drives Debian's Chromium; as root, install it when it is missing
browser:
	@if ! command -v chromedriver >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver; fi

# Tests that run an inference engine (OpenVINO, Paddle Inference) inside the pytest process run
# in a second process: the engines' thread pools stay alive after a test, and the training and
# loader tests fork worker processes.
ENGINE_TESTS := tests/inference tests/serving tests/tasks/test_fast_test.py \
	tests/tools/test_export_model.py tests/tools/test_quantize.py

test: venv-dev browser
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests $(addprefix --ignore=,$(ENGINE_TESTS))
	$(PY) -m pytest -q $(ENGINE_TESTS)

lint: venv-dev
	$(PY) -m ruff check .

demo: venv
	$(PY) tools/run_demo.py

bench: venv-dev
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf output inference data/demo .pytest_cache .ruff_cache
