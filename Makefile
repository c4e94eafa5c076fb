# pace — the two commands a newcomer needs are `make run` and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
KAFKA := ingest/kafka/kafka.sh
PACE_KAFKA_PORT ?= 19092
export PACE_KAFKA_PORT
BROKERS := 127.0.0.1:$(PACE_KAFKA_PORT)
VENV := target/venv
PYTHON := $(CURDIR)/$(VENV)/bin/python
PY_PACKAGES := duckdb==2.0.0 pyarrow==26.0.1 polars==2.1.0 jsonschema==4.26.0 playwright==1.65.2 kubernetes-validate==1.37.0 opentelemetry-proto==1.45.2
# The Compose specification's JSON schema, as compose-go (the library of
# `docker compose`) ships it, from the Go module proxy.
COMPOSE_GO := github.com/compose-spec/compose-go/v2@v2.16.2
COMPOSE_SCHEMA := target/tools/compose-spec-v2.16.2.json

.PHONY: help run test fuzz bench kafka-up kafka-down tools lint unit-and-integration clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

run: ## start pace: embedded broker, built-in race, pipeline and edge on http://127.0.0.1:8080/
	$(CARGO) run --release --bin pace -- run

test: tools lint ## everything CI runs: format, clippy, unit and integration tests on real Apache Kafka, a short fuzz run
	$(KAFKA) up
	trap '$(KAFKA) down' EXIT; \
	PACE_TEST_BROKERS=$(BROKERS) PACE_TEST_PYTHON=$(PYTHON) PACE_TEST_COMPOSE_SCHEMA=$(CURDIR)/$(COMPOSE_SCHEMA) \
		$(CARGO) test --workspace --locked
	$(MAKE) fuzz

FUZZ_SECONDS ?= 30
FUZZ_TOOLS := $(CURDIR)/target/tools
fuzz: ## fuzz the calc language for FUZZ_SECONDS (nightly Rust; installs cargo-fuzz under target/)
	@test -x $(FUZZ_TOOLS)/bin/cargo-fuzz || $(CARGO) install cargo-fuzz --locked --quiet --root $(FUZZ_TOOLS)
	rm -rf target/fuzz-corpus && cp -r pipeline/fuzz/corpus/calc target/fuzz-corpus
	cd pipeline && PATH=$(FUZZ_TOOLS)/bin:$$PATH CARGO_TARGET_DIR=$(CURDIR)/target/fuzz \
		cargo +nightly fuzz run --fuzz-dir fuzz calc $(CURDIR)/target/fuzz-corpus \
		-- -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
		> $(CURDIR)/target/fuzz.log 2>&1 || { cat $(CURDIR)/target/fuzz.log; exit 1; }
	@grep -E "^Done|stat::number_of_executed_units" target/fuzz.log

bench: tools ## the standard benchmark suite on a real broker (about 4 min after the build); prints the table, writes target/bench/
	$(CARGO) build --release --locked --bins
	$(KAFKA) up
	trap '$(KAFKA) down' EXIT; ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	target/release/pace-bench suite --brokers $(BROKERS) --pace target/release/pace --out target/bench $(BENCH_ARGS)

kafka-up: ## start a real Apache Kafka (KRaft, one node) on 127.0.0.1:$(PACE_KAFKA_PORT)
	$(KAFKA) up

kafka-down: ## stop it and delete its data
	$(KAFKA) down

lint: ## format check and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

tools: $(VENV)/.installed $(COMPOSE_SCHEMA) ## what tests need beyond Rust: Java 17, Maven, GNU bc, Debian's Chromium and Prometheus, Python with DuckDB, pyarrow, polars, jsonschema, Playwright and kubernetes-validate, the Compose schema
	@command -v java >/dev/null || { echo "java 17 is needed (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "installing maven"; apt-get install -y -q maven >/dev/null; }
	@command -v bc >/dev/null || { echo "installing bc"; apt-get install -y -q bc >/dev/null; }
	@test -x /usr/bin/chromium || { echo "installing chromium"; apt-get update -q >/dev/null; apt-get install -y -q chromium >/dev/null; }
	@command -v promtool >/dev/null || { echo "installing prometheus (and promtool)"; apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends prometheus >/dev/null; }; }
	$(KAFKA) fetch

$(COMPOSE_SCHEMA):
	@command -v go >/dev/null || { echo "go is needed to fetch the Compose schema (compose-go, from the Go module proxy)"; exit 1; }
	@mkdir -p $(@D)
	dir=$$(GOMODCACHE=$(CURDIR)/target/tools/gomod GOFLAGS=-modcacherw go mod download -json $(COMPOSE_GO) \
		| python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') && cp $$dir/schema/compose-spec.json $@

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_PACKAGES)
	touch $@

clean: kafka-down ## remove build output, the broker and the venv
	$(CARGO) clean
