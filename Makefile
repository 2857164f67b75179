# QuorumLM: build, test and run.
#
#   make run      a local 3-node cluster with a demo license (Ctrl-C stops it)
#   make test     everything CI checks: format, lints, tests, a short fuzz of the parsers
#   make chaos    the long chaos run (DURATION=600 seconds by default)
#
# Every target installs nothing system-wide except what .ci/run installs; see README.md.

CARGO ?= cargo
FUZZ_SECONDS ?= 20

.PHONY: all build test test-deps test-unit lint java-sdk java-test fmt run bench bench-engine bench-failover bench-load bench-etcd bench-scale flamegraph fuzz fuzz-smoke chaos image \
        compose-up compose-down compose-chaos deploy-check clean

all: build

build:
	$(CARGO) build --workspace --all-targets

## The README's test command: what the tests need (scripts/test-deps.sh installs Chromium,
## strace and JNA when missing), lints, the Java binding, then every test of the workspace
## (cluster-tests/tests/sdk_java.rs runs the Java binding against real clusters).
test: test-deps lint java-sdk test-unit

test-deps:
	./scripts/test-deps.sh

test-unit:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## Format, lints, the crate graph against ARCHITECTURE.md, and the docs (a dead link fails).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	CARGO="$(CARGO)" ./scripts/check-architecture.sh
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

fmt:
	$(CARGO) fmt --all

## The Java binding (src/java): target/java/quorumlm.jar, the example, and libquorumlm.so.
java-sdk:
	CARGO="$(CARGO)" ./scripts/java-sdk.sh

## The Java binding against real 3-process clusters.
java-test: java-sdk
	$(CARGO) build -p qlm-server --bin qlmd
	$(CARGO) test -p cluster-tests --test sdk_java

## A local 3-node cluster on loopback with a demo key and license (made at the first run).
run:
	./scripts/run-local.sh

## Benchmarks print their figures; docs/BENCHMARKS.md records them with the machine.
bench: bench-engine bench-load bench-failover bench-scale

bench-engine:
	$(CARGO) bench -p qlm-engine --bench engine

## Leader kill -9 under 8 clients, FAILOVER_RUNS runs (7); FAILOVER_ARGS adds qlmd flags.
bench-failover:
	$(CARGO) build --release -p qlm-server -p qlm-cli
	$(CARGO) run --release -p cluster-tests --bin failover

## Closed-loop checkout+checkin load on a real 3-process cluster (BENCH_CLIENTS, BENCH_SECS).
bench-load:
	$(CARGO) build --release -p qlm-server -p qlm-cli
	$(CARGO) run --release -p cluster-tests --bin load

## 100,000 live sessions heartbeating at their normal rate against a real 3-process cluster:
## RSS, CPU, heartbeat latency, data directory size (SCALE_SESSIONS, SCALE_SECS, SCALE_CHECKOUTS).
bench-scale:
	$(CARGO) build --release -p qlm-server -p qlm-cli
	$(CARGO) run --release -p cluster-tests --bin scale

## The same load against a 3-member etcd (Debian's etcd-server, installed when missing),
## interleaved with QuorumLM's per client count, BENCH_ROUNDS times (1); then both side by side
## with QuorumLM/etcd ratios (medians over the rounds). protoc for the etcd client is vendored.
bench-etcd:
	@command -v etcd >/dev/null || (apt-get update && apt-get install -y etcd-server etcd-client)
	$(CARGO) build --release -p qlm-server -p qlm-cli
	PROTOC="$$(ls -d $${CARGO_HOME:-$$HOME/.cargo}/registry/src/*/protoc-bin-vendored-linux-x86_64-*/bin/protoc | head -n1)" \
	    $(CARGO) build --release -p cluster-tests --features etcd --bin load --bin etcd_load
	./scripts/bench-etcd.sh

## A flame graph of the three servers under the load benchmark (perf + inferno; docs/flamegraph.svg).
flamegraph:
	./scripts/flamegraph.sh

## Fuzz the license and options parsers and the client port's request checks (cargo-fuzz on
## the stable toolchain).
fuzz: FUZZ_SECONDS = 300
fuzz: fuzz-smoke

fuzz-smoke:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	mkdir -p fuzz/corpus/license_file fuzz/corpus/options_file fuzz/corpus/requests
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run license_file corpus/license_file \
	    seeds/license_file -- -max_total_time=$(FUZZ_SECONDS)
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run options_file corpus/options_file \
	    seeds/options_file -- -max_total_time=$(FUZZ_SECONDS)
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run requests corpus/requests \
	    seeds/requests -- -max_total_time=$(FUZZ_SECONDS)

## The long chaos run: random fault scenarios under load for DURATION seconds, every history
## checked (docs/CHAOS.md). CHAOS_SEED=<seed> replays a run.
DURATION ?= 600
chaos:
	$(CARGO) build --bins --workspace
	$(CARGO) run -p cluster-tests --bin chaos -- $(DURATION)

## The container image (FROM scratch, static qlmd and qlm, non-root); prints its size.
image:
	./deploy/build-image.sh

## A 3-node docker compose cluster on this host (builds the image if missing, makes a demo
## license in deploy/demo, waits until all three are healthy); compose-down removes it all.
compose-up:
	./deploy/compose.sh up

compose-down:
	./deploy/compose.sh down

## The deployment files checked offline: systemd-analyze verify, kubernetes-validate --strict and
## the fields QuorumLM needs, docker compose config.
deploy-check:
	./deploy/check-deploy-files.sh

## Faults (kill the leader, a follower, a network disconnect) on a compose cluster of its own
## under a client workload from this host; checks nothing was over-granted or lost.
compose-chaos:
	./deploy/compose-chaos.sh

clean:
	$(CARGO) clean
