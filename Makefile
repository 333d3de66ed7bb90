# Two commands do everything on a fresh machine:
#   make run    create .venv, install, start the server on embedded defaults (SQLite in ./data, in-process bus, bundled CPU model)
#   make test   create .venv, install, lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py requirements-extra.txt 2>/dev/null | cksum | cut -d' ' -f1)
TORCH_STAMP := $(VENV)/.installed-torch
HOST ?= 127.0.0.1
PORT ?= 8080
GRPC_PORT ?=  # the gRPC API's port (empty: the server's setting, 50051 by default; 0: any free port)
DATA_DIR ?= ./data
PYTEST_ARGS ?=

.PHONY: install system-deps run test lint typecheck pytest screenshots proto bench key clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# The server's models ship in the package (Silero VAD's ONNX file, the speaker encoder's weights). resemblyzer is
	# only the tests' reference for the encoder; its metadata pulls torch, hence no dependencies.
	$(PY) -m pip install -q --no-deps -r requirements-extra.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# torch only for the tests of the torch backend (the server's default backend needs none). 2.13.0 is the CPU
# build this environment has on disk; elsewhere install the build that fits your machine first.
$(TORCH_STAMP): $(STAMP)
	$(PY) -m pip install -q torch==2.13.0
	touch $(TORCH_STAMP)

run: install
	$(VENV)/bin/media-server serve --host $(HOST) --port $(PORT) $(if $(strip $(GRPC_PORT)),--grpc-port $(strip $(GRPC_PORT))) --data-dir $(DATA_DIR)

test: install system-deps lint typecheck pytest

# Debian packages the tests use as real peers: flite and festival speak scripted calls, sipp (sip-tester) is the SIPREC
# client, openssl makes the TLS test's certificate, chromium publishes over WHIP, redis-server is the tests' own Redis, nginx is the
# README's reverse proxy (tests/test_tls.py). Installed when missing and root; else the tests that need
# them are skipped (and fail under CI=true).
SYSTEM_PACKAGES := flite:flite sipp:sip-tester openssl:openssl chromium:chromium festival:festival redis-server:redis-server nginx:nginx
# Packages without a command of their own (festival's English voices), checked with dpkg.
SYSTEM_DATA_PACKAGES := festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	for pkg in $(SYSTEM_DATA_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else echo "missing Debian packages:$$missing (not root: the tests that need them are skipped, and fail under CI)"; fi; \
	fi

lint: install
	$(VENV)/bin/ruff check media_server models tests benchmarks
	$(VENV)/bin/ruff format --check media_server models tests benchmarks
	$(VENV)/bin/lint-imports  # the layering in pyproject.toml's [tool.importlinter]

typecheck: install $(TORCH_STAMP)  # the torch backend is type-checked against torch
	$(VENV)/bin/mypy media_server models

# A test run leaves the tree clean: what `git status` lists after the suite and did not list before fails the run,
# with the list (in a git work tree only; screenshots and other outputs belong in ignored folders, as artifacts/).
pytest: install $(TORCH_STAMP)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		dir=$$(mktemp -d); git status --porcelain --untracked-files=all | sort > $$dir/before; \
		echo "$(VENV)/bin/pytest $(PYTEST_ARGS)"; $(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
		git status --porcelain --untracked-files=all | sort > $$dir/after; \
		new=$$(comm -13 $$dir/before $$dir/after); rm -rf $$dir; \
		if [ -n "$$new" ]; then echo "the test run changed the tree (ignore or remove what it writes):"; echo "$$new"; exit 1; fi; \
		exit $$rc; \
	else $(VENV)/bin/pytest $(PYTEST_ARGS); fi

# The README's screenshots (docs/images/) refreshed from the Chromium tests' (artifacts/screenshots/, ignored; the
# README's detail.png is the test's detail-explained.png).
SHOTS := $(or $(ARTIFACTS_DIR),artifacts)/screenshots
screenshots: install
	$(VENV)/bin/pytest -q tests/test_dashboard.py
	cp $(SHOTS)/wall.png $(SHOTS)/call.png $(SHOTS)/history.png $(SHOTS)/team.png docs/images/
	cp $(SHOTS)/detail-explained.png docs/images/detail.png

# Regenerate the Python code of proto/ (committed; tests check it is current).
proto: install
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. $$(find proto -name '*.proto' | sort)

# make key TEAM=acme ROLE=admin
key: install
	$(VENV)/bin/media-server keys create --team $(TEAM) --role $(ROLE) --data-dir $(DATA_DIR)

bench: install
	$(PY) benchmarks/call_load.py $(BENCH_ARGS)

bench-asr: install
	$(PY) benchmarks/asr_capacity.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
