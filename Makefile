# syncl_ros developer entry points. `make demo` runs the main job, `make test` the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp

.PHONY: setup test test-fast lint demo clean

setup:
	@scripts/setup_env.sh

# Two workers, each test file on one of them (its module fixtures built once); each worker on its
# own ROS domain (test/conftest.py). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: setup
	$(PYTEST) test

test-fast: setup  # the unit tests only (no processes, datasets or training): under a minute
	$(PYTEST) -m "not slow" test

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
# the layering contracts in .importlinter; a full parse takes a second, a cache can go stale
	$(VENV)/bin/lint-imports --no-cache

demo: setup
	@scripts/demo.sh

clean:
	rm -rf build log install demo_out .pytest_cache .mypy_cache .ruff_cache
