# dfs: `make run` starts a local cluster from etc/*.conf, `make test` runs every test.
SWIFT ?= swift
APT_PACKAGES := libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev pkg-config curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build release test run lint bench bench-deps bench-smoke clean venv fuzz fuzz-smoke

all: build

# Installs the system libraries (Debian packages) that are missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Unit, wrapper, integration and CLI tests (they run the built dfsd and dfs binaries), the lint, one smoke pass of
# the benchmark harness, and a bounded Schemathesis run against live servers.
test: deps
	$(SWIFT) build
	DFS_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(SWIFT) test
	$(MAKE) lint
	$(MAKE) bench-smoke
	$(MAKE) fuzz-smoke

run: release
	DFS_BIN_DIR="$$($(SWIFT) build -c release --show-bin-path)" scripts/run-cluster.sh

# Benchmarks (release build): bench/run.py starts its own cluster, nginx and (as root) network namespaces, runs every
# workload of issue 7 next to a reference measured in the same run, prints one table and writes bench/results/.
BENCH_APT_PACKAGES := nginx wrk iproute2 python3 python3-matplotlib procps iputils-ping
BENCH_PYTHON := /usr/bin/python3

# Installs the tools the benchmark harness drives (Debian packages) that are missing.
bench-deps: deps
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

bench: bench-deps release
	$(SUDO) $(BENCH_PYTHON) bench/run.py --bin "$$($(SWIFT) build -c release --show-bin-path)" $(BENCH_ARGS)

# One fast pass at a tiny size on loopback (no namespaces): fails on harness errors, never on missed targets.
bench-smoke: bench-deps build
	$(BENCH_PYTHON) bench/run.py --smoke --bin "$$($(SWIFT) build --show-bin-path)"

# Spec-driven fuzzing (issue 6): Schemathesis from PyPI in a local virtual environment (.venv, ignored by git).
SCHEMATHESIS_VERSION := 4.32.5
VENV := .venv
VENV_STAMP := $(VENV)/.schemathesis-$(SCHEMATHESIS_VERSION)

venv: $(VENV_STAMP)

$(VENV_STAMP):
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { \
		echo "installing: python3-venv"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "schemathesis==$(SCHEMATHESIS_VERSION)"
	@rm -f $(VENV)/.schemathesis-*
	@touch $@

# Live servers on ephemeral loopback ports, every operation of docs/openapi.yaml, then a check that they still serve.
# fuzz-smoke: bounded, fixed seed, about 3 minutes on 2 cores. fuzz: the longer run (FUZZ_ARGS adds options).
fuzz-smoke: deps venv
	$(SWIFT) build
	DFS_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(VENV)/bin/python fuzz/run_fuzz.py --smoke $(FUZZ_ARGS)

fuzz: deps venv
	$(SWIFT) build
	DFS_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(VENV)/bin/python fuzz/run_fuzz.py $(FUZZ_ARGS)

# Unsafe code and C modules stay in the wrapper targets.
lint:
	@bad=$$(grep -rlE 'Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|Unmanaged|OpaquePointer|@convention\(c\)|@unchecked Sendable|import C(MicroHTTPD|Curl|SQLite)' \
		Sources --include='*.swift' | grep -vE '^Sources/(MicroHTTPD|Curl|SQLite)/' || true); \
	if [ -n "$$bad" ]; then echo "unsafe code outside the wrapper targets:"; echo "$$bad"; exit 1; fi; \
	echo "lint: ok"

clean:
	rm -rf .build var
