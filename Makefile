# dfs: `make run` starts a local cluster from etc/*.conf, `make test` runs every test.
SWIFT ?= swift
APT_PACKAGES := libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev pkg-config curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build release test run lint bench clean

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

# Benchmarks (release build): each prints a table with a reference measured in the same run.
bench: release
	"$$($(SWIFT) build -c release --show-bin-path)/dfs-bench" locks --rounds 1000
	"$$($(SWIFT) build -c release --show-bin-path)/dfs-bench" cache --rounds 5

# Unsafe code and C modules stay in the wrapper targets.
lint:
	@bad=$$(grep -rlE 'Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|Unmanaged|OpaquePointer|@convention\(c\)|@unchecked Sendable|import C(MicroHTTPD|Curl|SQLite)' \
		Sources --include='*.swift' | grep -vE '^Sources/(MicroHTTPD|Curl|SQLite)/' || true); \
	if [ -n "$$bad" ]; then echo "unsafe code outside the wrapper targets:"; echo "$$bad"; exit 1; fi; \
	echo "lint: ok"

clean:
	rm -rf .build var
