# Strata: the two commands of the quick start are `make run` and `make test`.
# Each installs missing Debian packages (scripts/install-deps.sh), then configures and
# builds Release into build/ with every core.

BUILD_DIR  ?= build
BUILD_TYPE ?= Release
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SAN_DIR    ?= build-sanitize

.PHONY: all deps build test run bench sanitize fuzz thread-safety clean install

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# stratad in the foreground on 127.0.0.1:7450 with the example modules (a module already
# deployed in ./strata-data is kept). Ctrl-C stops it gracefully.
run: build
	@echo "stratad: binary protocol on 127.0.0.1:7450 (data in ./strata-data)."
	@echo "Web console: http://127.0.0.1:7451/ (REST API and /metrics on the same port: docs/http.md)."
	@echo "Connect from another terminal with the shell: $(BUILD_DIR)/bin/strata (docs/shell.md; the README has a tour)."
	@echo "Example modules: $(notdir $(filter-out %_v2.so,$(wildcard $(BUILD_DIR)/modules/*.so))) (the *_v2.so builds are their next versions, for 'update'). Ctrl-C stops the server."
	@echo "To run stratad as a service under systemd (restart on failure): docs/operations.md and scripts/stratad.service."
	exec $(BUILD_DIR)/bin/stratad --data-dir ./strata-data --listen 127.0.0.1:7450 \
	  $(addprefix --deploy ,$(filter-out %_v2.so,$(wildcard $(BUILD_DIR)/modules/*.so)))

# A local cluster on loopback (scripts/cluster.sh, docs/cluster.md "A local cluster"): one
# ZooKeeper and three stratad nodes (node-1..3 on 7450/7460/7470, HTTP +1), data and logs in
# ./strata-cluster. Ctrl-C stops it.
.PHONY: cluster
cluster: build
	exec scripts/cluster.sh run ./strata-cluster

# The cluster's fault tests (tests/cluster/faults.py, docs/cluster.md "Fault tests"), ROUNDS
# rounds of each fault (kill -9 of a leader, SIGSTOP, isolation, full restart, rebalance) with the checks
# after each and the failover times; needs root (network namespaces). ctest's
# cluster_faults_test runs one round of each.
ROUNDS ?= 10
.PHONY: cluster-test
cluster-test: build
	/usr/bin/python3 tests/cluster/faults.py --rounds $(ROUNDS) --build $(BUILD_DIR)

bench: build
	scripts/run-benchmarks.sh $(BUILD_DIR)

# The REST API against the binary protocol on one stratad (bench/http.sh, docs/performance.md
# "HTTP"): point selects and processed appends, 16 connections each. About 1 min.
.PHONY: bench-http
bench-http: deps $(BUILD_DIR)/CMakeCache.txt
	scripts/install-deps.sh --peers
	cmake --build $(BUILD_DIR) -j $(JOBS) --target stratad strata-bench wordcount
	bench/http.sh

# W1 against a 3-node cluster in network namespaces (bench/cluster-bench.py, docs/cluster.md
# "Measurements"): replication 3 against 1, and replication 1 spread over 1, 2 and 3 nodes.
# Needs root. About 2 min.
.PHONY: bench-cluster
bench-cluster: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target stratad strata-bench wordcount wordcount_b wordcount_c wordcount_d
	/usr/bin/python3 bench/cluster-bench.py --build $(BUILD_DIR)

.PHONY: bench-latency
bench-latency: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target stratad strata-bench wordcount
	bench/latency.sh

# Live subscriptions (bench/subscriptions.sh, docs/performance.md "Live subscriptions"): an
# update's delay after a processed append's ack, and W1 with 10,000 subscriptions open
# against W1 without, alternated three times. About 2 min.
.PHONY: bench-subscriptions
bench-subscriptions: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target stratad strata-bench wordcount
	bench/subscriptions.sh

.PHONY: bench-python
bench-python: deps $(BUILD_DIR)/CMakeCache.txt
	scripts/install-deps.sh --peers
	cmake --build $(BUILD_DIR) -j $(JOBS) --target stratad strata-bench wordcount
	bench/python.sh

# The module lifecycle over LIFECYCLE_RECORDS sentences of the examples' wordcount: stream
# rate, Recompute, an update's backfill, the pause of updates under load (bench/lifecycle_bench.cc,
# docs/performance.md "Module lifecycle"). Data in /tmp, deleted at the end; 10-20 min on 2 cores.
LIFECYCLE_RECORDS ?= 10000000
.PHONY: bench-lifecycle
bench-lifecycle: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bench_lifecycle
	$(BUILD_DIR)/bin/bench_lifecycle --records=$(LIFECYCLE_RECORDS)

# Microbatch against stream topologies (bench/microbatch_bench.cc, docs/performance.md
# "Microbatch topologies"): word count records/s of each over MICROBATCH_RECORDS sentences,
# side by side in MICROBATCH_ROUNDS alternating rounds, then the latency of `processed` acks
# at MICROBATCH_RATE records/s. Data in /tmp, deleted at the end; 1-2 min on 2 cores.
MICROBATCH_RECORDS ?= 1000000
MICROBATCH_ROUNDS  ?= 2
MICROBATCH_RATE    ?= 1000
.PHONY: bench-microbatch
bench-microbatch: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bench_microbatch
	$(BUILD_DIR)/bin/bench_microbatch --records=$(MICROBATCH_RECORDS) --rounds=$(MICROBATCH_ROUNDS) \
	  --rate=$(MICROBATCH_RATE)

# Strata side by side with PostgreSQL and Redis (without persistence, and with appendfsync
# always) on W1-W5 (bench/compare.sh, docs/performance.md): installs the peers, then
# COMPARE_SECONDS measured per variant. The Markdown table goes to stdout and
# $(BUILD_DIR)/compare.md, its JSON to $(BUILD_DIR)/compare.json (compare with an earlier run:
# bench/compare-diff.py bench/results/compare-<date>.json $(BUILD_DIR)/compare.json).
COMPARE_SECONDS ?= 10
.PHONY: compare
compare: build
	scripts/install-deps.sh --peers
	bench/compare.sh all --duration $(COMPARE_SECONDS) --json $(BUILD_DIR)/compare.json \
	  --markdown $(BUILD_DIR)/compare.md

# The crash harness (tests/crash): ROUNDS kill -9 of stratad during a mixed workload, ROUNDS
# of each lifecycle operation (update, recompute, rescale) plus the bank migration, and
# ROUNDS during the batches of the microbatch examples (mbbank, topwords, auction), each followed by
# a restart and the oracle checks. `make test` runs 4 rounds, 1 of each operation and 3
# microbatch rounds; SEED changes the random kill moments and workload.
ROUNDS ?= 20
SEED   ?=
.PHONY: crash-test
crash-test: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target crash_test
	STRATA_CRASH_ROUNDS=$(ROUNDS) STRATA_TEST_SEED=$(SEED) $(BUILD_DIR)/bin/crash_test

# The module SDK (headers, static libraries, CMake package Strata) into PREFIX; see
# docs/modules.md, "Building a module".
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

sanitize: deps
	cmake -S . -B $(SAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(SAN_DIR) -j $(JOBS)
	ctest --test-dir $(SAN_DIR) --output-on-failure -j $(JOBS)

# libFuzzer targets (tests/fuzz) in build-fuzz/ with clang-14, FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Every target built with clang-14's thread-safety analysis in build-tsa/: a GUARDED_BY
# field touched without its mutex, or a REQUIRES function called without it, fails the
# build (strata/thread_annotations.h). Debug -O0: only the warnings matter here.
TSA_DIR ?= build-tsa
thread-safety:
	scripts/install-deps.sh --analysis
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(TSA_DIR) -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DCMAKE_CXX_FLAGS="-Wthread-safety -Werror=thread-safety" \
	  $(CMAKE_ARGS)
	cmake --build $(TSA_DIR) -j $(JOBS)

clean:
	rm -rf $(BUILD_DIR) $(SAN_DIR) $(TSA_DIR) build-fuzz
