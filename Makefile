# dfs: `make run` starts a local cluster from etc/*.conf, `make test` runs every test.
SWIFT ?= swift
APT_PACKAGES := libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev pkg-config curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build release test run lint bench bench-deps bench-smoke clean

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

# Unit, wrapper, integration and CLI tests. Integration and CLI tests run the built dfsd and dfs binaries.
test: deps
	$(SWIFT) build
	DFS_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(SWIFT) test
	$(MAKE) lint

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
bench-smoke: bench-deps release
	$(BENCH_PYTHON) bench/run.py --smoke --bin "$$($(SWIFT) build -c release --show-bin-path)"

# Unsafe code and C modules stay in the wrapper targets.
lint:
	@bad=$$(grep -rlE 'Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|Unmanaged|OpaquePointer|@convention\(c\)|@unchecked Sendable|import C(MicroHTTPD|Curl|SQLite)' \
		Sources --include='*.swift' | grep -vE '^Sources/(MicroHTTPD|Curl|SQLite)/' || true); \
	if [ -n "$$bad" ]; then echo "unsafe code outside the wrapper targets:"; echo "$$bad"; exit 1; fi; \
	echo "lint: ok"

clean:
	rm -rf .build var
